package main

import (
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"peer/chaos/procs"
)

// TestLeaveSendsTheToken: `peer leave` to a node with --api-token is refused without
// the token and accepted with PEER_API_TOKEN, after which the node stops.
func TestLeaveSendsTheToken(t *testing.T) {
	bin := buildPeer(t)
	httpAddr := procs.FreeAddr()
	var logs syncBuffer
	node := exec.Command(bin, "run", "--name", "leaver", "--rtmp", procs.FreeAddr(), "--http", httpAddr,
		"--gossip", procs.FreeAddr(), "--raft", procs.FreeAddr(), "--data", t.TempDir(), "--api-token", "tok3n")
	node.Stderr = &logs
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { node.Wait(); close(exited) }()
	defer func() {
		node.Process.Kill()
		<-exited
	}()
	api := "http://" + httpAddr
	for deadline := time.Now().Add(15 * time.Second); ; {
		if resp, err := http.Get(api + "/api/v1/versions"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node API never answered:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	leave := func(env ...string) ([]byte, error) {
		cmd := exec.Command(bin, "leave", "--api", api)
		cmd.Env = append(os.Environ(), env...)
		return cmd.CombinedOutput()
	}
	if out, err := leave("PEER_API_TOKEN=wrong"); err == nil || !strings.Contains(string(out), "401") {
		t.Fatalf("leave with a wrong token: %v\n%s", err, out)
	}
	if out, err := leave("PEER_API_TOKEN=tok3n"); err != nil || !strings.Contains(string(out), `"left"`) {
		t.Fatalf("leave with the token: %v\n%s", err, out)
	}
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("node still running after leave:\n%s", logs.String())
	}
}
