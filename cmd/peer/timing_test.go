package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"peer/chaos/procs"
)

// TestTimingProfiles: the wan profile starts; a fence that a promotion could beat is
// refused at start with the values named.
func TestTimingProfiles(t *testing.T) {
	bin := buildPeer(t)
	args := func(extra ...string) []string {
		return append([]string{"run", "--name", "tp", "--rtmp", procs.FreeAddr(), "--http", procs.FreeAddr(),
			"--gossip", procs.FreeAddr(), "--raft", procs.FreeAddr(), "--data", filepath.Join(t.TempDir(), "d")}, extra...)
	}
	out, err := exec.Command(bin, args("--fence-timeout", "5s", "--failover-grace", "500ms")...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "fencing unsafe") || !strings.Contains(string(out), "fence timeout 5s") {
		t.Fatalf("an unsafe fence started (%v):\n%s", err, out)
	}
	var logs syncBuffer
	cmd := exec.Command(bin, args("--timing", "wan")...)
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "node started") {
		if time.Now().After(deadline) {
			t.Fatalf("the wan profile did not start:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "wan") {
		t.Fatalf("the start line does not name the profile:\n%s", logs.String())
	}
}
