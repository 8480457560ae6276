package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"peer/chaos/procs"
)

// peerProc is one peer process of these tests, its stdout and stderr captured.
type peerProc struct {
	cmd      *exec.Cmd
	out, log syncBuffer
	exited   chan struct{}
	err      error
}

func startPeer(t *testing.T, bin string, args ...string) *peerProc {
	t.Helper()
	p := &peerProc{cmd: exec.Command(bin, args...), exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { p.cmd.Process.Kill(); <-p.exited })
	return p
}

// waitFor polls the process's output for re, bounded in time.
func (p *peerProc) waitFor(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(p.out.String() + p.log.String()); m != nil {
			return m
		}
		select {
		case <-p.exited:
			t.Fatalf("exited (%v) before printing %s:\n%s%s", p.err, re, p.out.String(), p.log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("no %s within 20 s:\n%s%s", re, p.out.String(), p.log.String())
	return nil
}

// exitErr waits for the process to end by itself and returns what it wrote.
func (p *peerProc) exitErr(t *testing.T) string {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("still running:\n%s", p.log.String())
	}
	if p.err == nil {
		t.Fatalf("exited cleanly, want an error:\n%s", p.log.String())
	}
	return p.out.String() + p.log.String()
}

func (p *peerProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("no stop after SIGTERM")
	}
}

func port(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }

// A keyless `peer run` whose cluster ports bind every interface generates a key, keeps
// it in the data dir (0600), prints the exact join line and reuses the key on restart.
// Nodes joining without the key, or keyless on non-loopback ports, fail at start with
// a message saying what to do; with the printed line they join. (The ports bind
// 0.0.0.0, but --advertise 127.0.0.1 keeps all traffic on loopback.)
func TestRunGeneratesKeyJoinNeedsIt(t *testing.T) {
	bin := buildPeer(t)
	data := t.TempDir()
	gossip, raft := procs.FreeAddr(), procs.FreeAddr()
	args := []string{"run", "--name", "k1", "--rtmp", procs.FreeAddr(), "--http", procs.FreeAddr(),
		"--gossip", "0.0.0.0:" + port(gossip), "--raft", "0.0.0.0:" + port(raft), "--advertise", "127.0.0.1",
		"--data", data, "--procs", "1"}
	joinLine := regexp.MustCompile(`peer join 127\.0\.0\.1:` + port(gossip) + ` --cluster-key ([A-Za-z0-9_-]{20,})\n`)
	first := startPeer(t, bin, args...)
	key := first.waitFor(t, joinLine)[1]
	if !strings.Contains(first.out.String(), "peer join 127.0.0.1:"+port(gossip)+" --cluster-key "+key) {
		t.Fatalf("join line not on stdout:\n%s", first.out.String())
	}
	st, err := os.Stat(filepath.Join(data, "cluster-key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", st, err)
	}
	if b, _ := os.ReadFile(filepath.Join(data, "cluster-key")); strings.TrimSpace(string(b)) != key {
		t.Fatalf("key file holds %q, printed %q", b, key)
	}
	first.stop(t)
	again := startPeer(t, bin, args...)
	if k := again.waitFor(t, joinLine)[1]; k != key {
		t.Fatalf("restart printed key %q, want the kept %q", k, key)
	}
	again.waitFor(t, regexp.MustCompile(`node started`))

	seed := "127.0.0.1:" + port(gossip)
	node := func(name string, bind string, extra ...string) []string {
		return append([]string{"join", seed, "--name", name, "--rtmp", procs.FreeAddr(), "--http", procs.FreeAddr(),
			"--gossip", bind + ":" + port(procs.FreeAddr()), "--raft", bind + ":" + port(procs.FreeAddr()),
			"--advertise", "127.0.0.1", "--data", t.TempDir(), "--procs", "1"}, extra...)
	}
	if out := startPeer(t, bin, node("keyless", "127.0.0.1")...).exitErr(t); !strings.Contains(out, "the cluster at "+seed+" needs --cluster-key (printed by the first node's start)") {
		t.Fatalf("keyless join to a keyed cluster:\n%s", out)
	}
	if out := startPeer(t, bin, node("open", "0.0.0.0")...).exitErr(t); !strings.Contains(out, "needs --cluster-key") {
		t.Fatalf("keyless join on non-loopback ports:\n%s", out)
	}
	if out := startPeer(t, bin, node("wrong", "127.0.0.1", "--cluster-key", "not-"+key)...).exitErr(t); !strings.Contains(out, "refused this node's cluster key") {
		t.Fatalf("join with another key:\n%s", out)
	}
	joined := startPeer(t, bin, node("k2", "127.0.0.1", "--cluster-key", key)...)
	joined.waitFor(t, regexp.MustCompile(`joined the cluster`))
	joined.waitFor(t, regexp.MustCompile(`"security": "cluster key`))
}

// A keyless node on loopback ports runs keyless, generates nothing, and says so.
func TestKeylessLoopback(t *testing.T) {
	bin := buildPeer(t)
	data := t.TempDir()
	p := startPeer(t, bin, "run", "--name", "lo", "--rtmp", procs.FreeAddr(), "--http", procs.FreeAddr(),
		"--gossip", procs.FreeAddr(), "--raft", procs.FreeAddr(), "--data", data, "--procs", "1")
	p.waitFor(t, regexp.MustCompile(`"security": "KEYLESS: gossip and raft bind loopback only`))
	if _, err := os.Stat(filepath.Join(data, "cluster-key")); err == nil {
		t.Fatal("a loopback-only node generated a key")
	}
	if strings.Contains(p.out.String(), "peer join") {
		t.Fatalf("a keyless node printed a join line:\n%s", p.out.String())
	}
}
