package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"peer/chaos/avtest"
	"peer/chaos/procs"
)

// buildPeer compiles this command into a temp dir.
func buildPeer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "peer")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// TestSIGTERM: a node with a live publisher and player stops cleanly within 5 s.
func TestSIGTERM(t *testing.T) {
	avtest.RequireTools(t)
	bin := buildPeer(t)
	rtmpAddr, httpAddr := procs.FreeAddr(), procs.FreeAddr()
	var logs syncBuffer
	cmd := exec.Command(bin, "run", "--name", "sigterm", "--rtmp", rtmpAddr, "--http", httpAddr,
		"--gossip", procs.FreeAddr(), "--raft", procs.FreeAddr(), "--data", t.TempDir(), "--procs", "1")
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	pub, err := avtest.Publish("rtmp://"+rtmpAddr+"/live/s", avtest.PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Stop()
	player, err := avtest.Start("ffmpeg", "-v", "error", "-i", "http://"+httpAddr+"/live/s.flv", "-c", "copy", "-f", "null", "-")
	if err != nil {
		t.Fatal(err)
	}
	defer player.Stop()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(logs.String(), "play start") {
		if time.Now().After(deadline) {
			t.Fatalf("player never started:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("exit: %v\n%s", waitErr, logs.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("still running 5 s after SIGTERM:\n%s", logs.String())
	}
	t.Logf("stopped in %v", time.Since(start))
	if !strings.Contains(logs.String(), "node stopped") {
		t.Fatalf("no clean stop logged:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), `"procs": 1`) {
		t.Fatalf("--procs 1 not in the start line:\n%s", logs.String())
	}
}

// TestBadProcs: a negative --procs is refused before anything starts.
func TestBadProcs(t *testing.T) {
	out, err := exec.Command("go", "run", ".", "run", "--procs=-1", "--data", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--procs -1") {
		t.Fatalf("want a --procs error, got %v:\n%s", err, out)
	}
}

func TestVersion(t *testing.T) {
	out, err := exec.Command("go", "run", ".", "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "peer ") {
		t.Fatalf("version: %v %q", err, out)
	}
}

// syncBuffer is a bytes.Buffer the child's stderr copier and the test may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
