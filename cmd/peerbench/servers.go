package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	cprocs "peer/chaos/procs"
)

// server is one measured media server: a peer node or an nginx instance (master and
// its workers). pids returns every process whose CPU and RSS count as the server's.
type server interface {
	name() string
	pids() []int
	rtmpAddr() string
	alive() bool
}

// ---- peer ----

// peerLogLevel is --peer-log-level.
var peerLogLevel = "warn"

// peerProcs is every peer node's --procs: nginx's worker_processes, so both servers run
// each node on the same number of cores.
var peerProcs = 1

type peerNode struct {
	nodeName               string
	rtmp, http, gossip, rf string
	p                      *proc
}

func (n *peerNode) name() string     { return n.nodeName }
func (n *peerNode) pids() []int      { return []int{n.p.pid()} }
func (n *peerNode) rtmpAddr() string { return n.rtmp }
func (n *peerNode) alive() bool      { return n.p.running() }
func (n *peerNode) base() string     { return "http://" + n.http }

// kill SIGKILLs the node by its PID and waits for it.
func (n *peerNode) kill() {
	n.p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-n.p.done:
	case <-time.After(10 * time.Second):
	}
}

// startPeer starts `peer run` (seed empty) or `peer join SEED` on fresh loopback ports
// and waits for its HTTP API.
func startPeer(ctx context.Context, ps *procs, bin, dir, name, seed string, extra ...string) (*peerNode, error) {
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	n := &peerNode{nodeName: name,
		rtmp: fmt.Sprintf("127.0.0.1:%d", ports[0]), http: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		gossip: fmt.Sprintf("127.0.0.1:%d", ports[2]), rf: fmt.Sprintf("127.0.0.1:%d", ports[3])}
	args := []string{"run"}
	if seed != "" {
		args = []string{"join", seed}
	}
	args = append(args, "--name", name, "--rtmp", n.rtmp, "--http", n.http, "--gossip", n.gossip, "--raft", n.rf,
		"--data", filepath.Join(dir, "data-"+name), "--cluster-key", "peerbench", "--log-level", peerLogLevel,
		"--procs", fmt.Sprint(peerProcs))
	args = append(args, extra...)
	logPath := filepath.Join(dir, name+".log")
	if n.p, err = ps.start("peer "+name, logPath, nil, bin, args...); err != nil {
		return nil, err
	}
	if err := waitFor(ctx, 15*time.Second, "peer "+name+" HTTP API", func() bool {
		if !n.p.running() {
			return true
		}
		resp, err := httpc.Get(n.base() + "/api/v1/versions")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}); err != nil {
		return nil, err
	}
	if !n.p.running() {
		return nil, fmt.Errorf("peer %s exited at start: %v (see %s)", name, n.p.err, logPath)
	}
	return n, nil
}

// startPeerCluster starts n nodes (the first runs, the others join it) and waits until
// every node sees the same leader and every node alive.
func startPeerCluster(ctx context.Context, ps *procs, bin, dir string, n int, extra func(i int) []string) ([]*peerNode, error) {
	var nodes []*peerNode
	for i := range n {
		var args []string
		if extra != nil {
			args = extra(i)
		}
		seed := ""
		if i > 0 {
			seed = nodes[0].gossip
		}
		nd, err := startPeer(ctx, ps, bin, dir, fmt.Sprintf("n%d", i+1), seed, args...)
		if err != nil {
			return nodes, err
		}
		nodes = append(nodes, nd)
	}
	err := waitFor(ctx, 30*time.Second, "an agreed cluster view", func() bool {
		leader := ""
		for _, nd := range nodes {
			v, err := clusterView(nd)
			if err != nil || v.Leader == "" || (leader != "" && v.Leader != leader) {
				return false
			}
			leader = v.Leader
			alive := 0
			for _, m := range v.Members {
				if m.State == "alive" {
					alive++
				}
			}
			if alive < n {
				return false
			}
		}
		return true
	})
	return nodes, err
}

func clusterView(n *peerNode) (cprocs.View, error) {
	var v cprocs.View
	resp, err := httpc.Get(n.base() + "/api/v1/cluster")
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return v, err
	}
	return v, json.Unmarshal(b, &v)
}

func assignment(n *peerNode, stream string) (cprocs.Assignment, bool) {
	v, err := clusterView(n)
	if err != nil {
		return cprocs.Assignment{}, false
	}
	return v.Stream(stream)
}

func byName(nodes []*peerNode, name string) *peerNode {
	for _, n := range nodes {
		if n.nodeName == name {
			return n
		}
	}
	return nil
}

// ---- nginx-rtmp ----

type nginxInst struct {
	role      string
	dir       string
	rtmp      string
	http      string // "" without an HTTP server
	p         *proc
	killedAll bool
}

func (n *nginxInst) name() string     { return "nginx-" + n.role }
func (n *nginxInst) rtmpAddr() string { return n.rtmp }
func (n *nginxInst) alive() bool      { return n.p.running() }
func (n *nginxInst) pids() []int {
	if !n.p.running() {
		return nil
	}
	return append([]int{n.p.pid()}, childPIDs(n.p.pid())...)
}

// kill SIGKILLs the master and its workers, by PID (an nginx worker outlives a killed
// master otherwise).
func (n *nginxInst) kill() {
	kids := childPIDs(n.p.pid())
	n.p.cmd.Process.Signal(syscall.SIGKILL)
	for _, k := range kids {
		syscall.Kill(k, syscall.SIGKILL)
	}
	select {
	case <-n.p.done:
	case <-time.After(10 * time.Second):
	}
}

// stop ends nginx by the PID in its pid file (= the master we started), then makes
// sure no worker of it is left.
func (n *nginxInst) stop() {
	kids := childPIDs(n.p.pid())
	if b, err := os.ReadFile(filepath.Join(n.dir, "nginx.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid == n.p.pid() {
			syscall.Kill(pid, syscall.SIGQUIT)
		}
	}
	select {
	case <-n.p.done:
	case <-time.After(5 * time.Second):
		n.p.cmd.Process.Kill()
		<-n.p.done
	}
	for _, k := range kids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", k)); err == nil {
			syscall.Kill(k, syscall.SIGKILL)
		}
	}
}

// childPIDs lists the processes whose parent is pid.
func childPIDs(pid int) []int {
	var out []int
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)); err == nil {
		for _, f := range strings.Fields(string(b)) {
			if v, err := strconv.Atoi(f); err == nil {
				out = append(out, v)
			}
		}
		return out
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		k, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", k))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, k)
		}
	}
	return out
}

type nginxOpts struct {
	role   string
	hls    bool     // hls on in app live, served over HTTP at /hls/
	push   []string // rtmp host:port to push every app to
	pull   string   // rtmp host:port to pull every app from
	apps   []string // applications (live on)
	worker int      // worker_processes
}

func nginxBinary() (string, error) {
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if b, err := exec.LookPath(p); err == nil {
			return b, nil
		}
	}
	return "", fmt.Errorf("nginx not installed (scripts/bench.sh installs nginx-light and libnginx-mod-rtmp with apt-get)")
}

func nginxModule() (string, error) {
	for _, p := range []string{"/usr/lib/nginx/modules/ngx_rtmp_module.so", "/usr/share/nginx/modules/ngx_rtmp_module.so"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("ngx_rtmp_module.so not found (apt-get install libnginx-mod-rtmp)")
}

// startNginx writes DIR/nginx-ROLE/nginx.conf and runs `nginx -c FILE -p DIR` in the
// foreground (daemon off) on free loopback ports.
func startNginx(ctx context.Context, ps *procs, dir string, o nginxOpts) (*nginxInst, error) {
	bin, err := nginxBinary()
	if err != nil {
		return nil, err
	}
	mod, err := nginxModule()
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	n := &nginxInst{role: o.role, dir: filepath.Join(dir, "nginx-"+o.role), rtmp: fmt.Sprintf("127.0.0.1:%d", ports[0])}
	for _, d := range []string{n.dir, filepath.Join(n.dir, "logs"), filepath.Join(n.dir, "hls")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if o.worker <= 0 {
		o.worker = 1
	}
	var b strings.Builder
	fmt.Fprintf(&b, "load_module %s;\n", mod)
	fmt.Fprintf(&b, "daemon off;\nmaster_process on;\nuser root;\nworker_processes %d;\nworker_rlimit_nofile 20000;\n", o.worker)
	fmt.Fprintf(&b, "pid %s;\nerror_log %s warn;\n", filepath.Join(n.dir, "nginx.pid"), filepath.Join(n.dir, "logs", "error.log"))
	b.WriteString("events { worker_connections 8192; }\n")
	b.WriteString("rtmp {\n  server {\n")
	fmt.Fprintf(&b, "    listen %s;\n    chunk_size 4096;\n    ping 0;\n", n.rtmp)
	for _, app := range o.apps {
		fmt.Fprintf(&b, "    application %s {\n      live on;\n", app)
		if o.hls && app == "live" {
			fmt.Fprintf(&b, "      hls on;\n      hls_path %s;\n      hls_fragment 2s;\n      hls_playlist_length 12s;\n", filepath.Join(n.dir, "hls"))
		}
		for _, p := range o.push {
			fmt.Fprintf(&b, "      push rtmp://%s/%s;\n", p, app)
		}
		if o.pull != "" {
			fmt.Fprintf(&b, "      pull rtmp://%s/%s;\n", o.pull, app)
		}
		b.WriteString("    }\n")
	}
	b.WriteString("  }\n}\n")
	if o.hls {
		n.http = fmt.Sprintf("127.0.0.1:%d", ports[1])
		b.WriteString("http {\n  access_log off;\n  sendfile on;\n")
		for _, t := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
			fmt.Fprintf(&b, "  %s_temp_path %s;\n", t, filepath.Join(n.dir, t+"_temp"))
		}
		fmt.Fprintf(&b, "  server {\n    listen %s;\n    location /hls/ {\n      alias %s/;\n", n.http, filepath.Join(n.dir, "hls"))
		b.WriteString("      types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }\n      add_header Cache-Control no-cache;\n    }\n  }\n}\n")
	}
	conf := filepath.Join(n.dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	if n.p, err = ps.start("nginx "+o.role, filepath.Join(n.dir, "stderr.log"), nil, bin,
		"-c", conf, "-p", n.dir+"/", "-e", filepath.Join(n.dir, "logs", "error.log")); err != nil {
		return nil, err
	}
	n.p.stopFn = n.stop
	if err := waitFor(ctx, 10*time.Second, "nginx "+o.role+" to listen", func() bool {
		return !n.p.running() || canDial(n.rtmp)
	}); err != nil {
		return nil, err
	}
	if !n.p.running() {
		el, _ := os.ReadFile(filepath.Join(n.dir, "logs", "error.log"))
		so, _ := os.ReadFile(filepath.Join(n.dir, "stderr.log"))
		return nil, fmt.Errorf("nginx %s exited at start: %v: %s %s", o.role, n.p.err, el, so)
	}
	return n, nil
}
