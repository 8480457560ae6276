// Package procs runs real `peer` processes on loopback for cluster tests and the chaos
// harness: start, join, SIGKILL, SIGSTOP/SIGCONT, restart with the same data dir, and
// read each node's /api/v1/cluster view.
package procs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Build compiles ./cmd/peer of the module rooted at root into dir.
func Build(root, dir string) (string, error) {
	bin := filepath.Join(dir, "peer")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/peer")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
}

// RunWithBinary is a test binary's TestMain body for tests of real peer processes: it
// builds ./cmd/peer of the module rooted at root (relative to the test's package dir)
// once into a temporary dir, or takes PEER_BIN (e.g. a -race build), sets *bin, runs the
// tests, and returns their exit code after check (goleak, say; may be nil) has passed.
func RunWithBinary(m interface{ Run() int }, root string, bin *string, check func() error) int {
	if *bin = os.Getenv("PEER_BIN"); *bin == "" {
		dir, err := os.MkdirTemp("", "peer-test-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		defer os.RemoveAll(dir)
		abs, _ := filepath.Abs(root)
		if *bin, err = Build(abs, dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	code := m.Run()
	if code == 0 && check != nil {
		if err := check(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	return code
}

// Ports are drawn below Linux's ephemeral range (32768-60999), where the kernel never
// puts the local end of an outgoing connection, and never twice in one test binary: a
// port the kernel picked for :0 and released can be picked again, or taken by a client,
// before the node that was given it binds (a CI flake: two nodes got the same port).
const (
	portLow  = 20000
	portHigh = 32000
)

var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreeAddr returns a loopback address whose port is free for TCP and UDP now (gossip
// uses both) and was not returned before.
func FreeAddr() string {
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 1000 {
		p := portLow + rand.IntN(portHigh-portLow)
		if handedOut.ports[p] {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", p)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		handedOut.ports[p] = true
		return addr
	}
	panic("no free loopback port in [20000, 32000)")
}

// Node is one peer process.
type Node struct {
	Name                     string
	RTMP, HTTP, Gossip, Raft string
	Data, Log                string
	Extra                    []string

	bin  string
	key  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Cluster is a set of peer processes sharing a key.
type Cluster struct {
	Bin   string
	Key   string
	Dir   string
	Nodes []*Node
}

// NewNode prepares (does not start) a node with fresh loopback ports.
func (c *Cluster) NewNode(name string, extra ...string) *Node {
	n := &Node{Name: name, RTMP: FreeAddr(), HTTP: FreeAddr(), Gossip: FreeAddr(), Raft: FreeAddr(),
		Data: filepath.Join(c.Dir, name), Log: filepath.Join(c.Dir, name+".log"), Extra: extra, bin: c.Bin, key: c.Key}
	c.Nodes = append(c.Nodes, n)
	return n
}

// Start launches n: `peer run` with no seeds, else `peer join SEEDS`.
func (n *Node) Start(seeds ...string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	args := []string{"run"}
	if len(seeds) > 0 {
		args = append([]string{"join"}, seeds...)
	}
	args = append(args, "--name", n.Name, "--rtmp", n.RTMP, "--http", n.HTTP, "--gossip", n.Gossip, "--raft", n.Raft,
		"--data", n.Data, "--log-format", "json")
	if n.key != "" {
		args = append(args, "--cluster-key", n.key)
	}
	args = append(args, n.Extra...)
	logf, err := os.OpenFile(n.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(n.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	n.cmd, n.done = cmd, done
	return nil
}

// Running reports whether the process is alive (possibly stopped).
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// PID of the running process, 0 if none.
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

func (n *Node) signal(sig syscall.Signal) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil && n.cmd.Process != nil {
		n.cmd.Process.Signal(sig)
	}
}

// Kill sends SIGKILL and waits for the process to end.
func (n *Node) Kill() {
	n.signal(syscall.SIGCONT)
	n.signal(syscall.SIGKILL)
	n.wait(10 * time.Second)
}

// Stop sends SIGTERM, then SIGKILL after 6 s.
func (n *Node) Stop() {
	n.signal(syscall.SIGCONT)
	n.signal(syscall.SIGTERM)
	if !n.wait(6 * time.Second) {
		n.Kill()
	}
}

// Pause freezes the process (SIGSTOP); Resume thaws it.
func (n *Node) Pause()  { n.signal(syscall.SIGSTOP) }
func (n *Node) Resume() { n.signal(syscall.SIGCONT) }

func (n *Node) wait(d time.Duration) bool {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// Member is one entry of /api/v1/cluster's members.
type Member struct {
	Name, State, Raft, RTMP, HTTP string
}

// Assignment is one entry of /api/v1/cluster's streams.
type Assignment struct {
	Stream   string
	Master   string
	Replicas []string
	Edges    []string
	Epoch    uint64
}

// View is /api/v1/cluster.
type View struct {
	Code     int
	Self     string
	Leader   string
	Degraded bool     // out of contact with a Raft leader
	Unplaced []string // streams mastered without placement (taken while degraded)
	Members  []Member
	Streams  []Assignment
}

// Stream returns the assignment of stream in v.
func (v View) Stream(stream string) (Assignment, bool) {
	for _, a := range v.Streams {
		if a.Stream == stream {
			return a, true
		}
	}
	return Assignment{}, false
}

var client = &http.Client{Timeout: 2 * time.Second}

// View asks n for its cluster view.
func (n *Node) View(ctx context.Context) (View, error) {
	var v View
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.HTTP+"/api/v1/cluster", nil)
	resp, err := client.Do(req)
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return v, err
	}
	return v, json.Unmarshal(body, &v)
}

// Logs returns the node's log so far.
func (n *Node) Logs() string {
	b, _ := os.ReadFile(n.Log)
	return string(b)
}

// StopAll stops every node still running.
func (c *Cluster) StopAll() {
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		wg.Add(1)
		go func() { defer wg.Done(); n.Kill() }()
	}
	wg.Wait()
}

// Agreed reports whether every given node sees the same leader, every given node alive
// and at least voters of them voting (the leader counts), returning the leader.
func Agreed(ctx context.Context, nodes []*Node, voters int) (string, bool) {
	leader := ""
	for _, n := range nodes {
		v, err := n.View(ctx)
		if err != nil || v.Leader == "" {
			return "", false
		}
		if leader == "" {
			leader = v.Leader
		} else if v.Leader != leader {
			return "", false
		}
		alive := map[string]bool{}
		voting := 0
		for _, m := range v.Members {
			if m.State == "alive" {
				alive[m.Name] = true
			}
			if m.Raft == "leader" || m.Raft == "voter" {
				voting++
			}
		}
		if voting < voters {
			return "", false
		}
		for _, o := range nodes {
			if !alive[o.Name] {
				return "", false
			}
		}
	}
	return leader, true
}

// ByName finds a node.
func (c *Cluster) ByName(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Others returns the nodes other than the named ones.
func (c *Cluster) Others(names ...string) []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		skip := false
		for _, x := range names {
			skip = skip || strings.EqualFold(n.Name, x)
		}
		if !skip {
			out = append(out, n)
		}
	}
	return out
}
