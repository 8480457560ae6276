package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"peer/chaos/avtest"
	"peer/chaos/procs"
)

// TestStatusTables: `peer status`, `peer streams` and `peer clients` print tables of a
// 3-node cluster with a live stream; --json keeps the API's answer.
func TestStatusTables(t *testing.T) {
	avtest.RequireTools(t)
	bin := buildPeer(t)
	c := &procs.Cluster{Bin: bin, Key: "status-test-key", Dir: t.TempDir()}
	defer c.StopAll()
	for i := range 3 {
		n := c.NewNode(fmt.Sprintf("n%d", i+1))
		var seeds []string
		if i > 0 {
			seeds = []string{c.Nodes[0].Gossip}
		}
		if err := n.Start(seeds...); err != nil {
			t.Fatal(err)
		}
	}
	pub, err := avtest.Publish("rtmp://"+c.Nodes[0].RTMP+"/live/status", avtest.PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Stop()
	api := "http://" + c.Nodes[1].HTTP
	try := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append(args, "--api", api)...).CombinedOutput()
		return string(out), err
	}
	run := func(args ...string) string {
		out, err := try(args...)
		if err != nil {
			t.Fatalf("peer %v: %v\n%s", args, err, out)
		}
		return out
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, agreed := procs.Agreed(context.Background(), c.Nodes, 3)
		out, _ := try("status") // the node may not be listening yet
		if agreed && strings.Contains(out, "live/status") && strings.Count(out, " alive ") == 3 {
			t.Logf("peer status:\n%s", out)
			for _, want := range []string{"MEMBER", "STATE", "RAFT", "n1 ", "n2 *", "n3 ", "leader", "voter",
				c.Nodes[0].RTMP, c.Nodes[2].HTTP, "STREAM", "MASTER", "REPLICAS", "EPOCH"} {
				if !strings.Contains(out, want) {
					t.Errorf("status has no %q", want)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed 3 alive members and the stream:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out := run("status", "--json"); !strings.Contains(out, `"members"`) || !strings.Contains(out, `"live/status"`) {
		t.Errorf("status --json:\n%s", out)
	}
	// The stream's master is n1, where ffmpeg publishes: its streams and clients tables.
	api = "http://" + c.Nodes[0].HTTP
	if out := run("streams"); !strings.Contains(out, "live/status") || !strings.Contains(out, "H264 320x240") {
		t.Errorf("peer streams:\n%s", out)
	}
	out := run("clients")
	if !strings.Contains(out, "publisher") {
		t.Errorf("peer clients:\n%s", out)
	}
	// peer kick ends the publisher (the node is on this host: no token needed).
	var id string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[1] == "live/status" && strings.Contains(line, "publisher") {
			id = f[0]
		}
	}
	if id == "" {
		t.Fatalf("no publisher id in:\n%s", out)
	}
	if out := run("kick", id); !strings.Contains(out, `"kicked"`) {
		t.Errorf("peer kick %s:\n%s", id, out)
	}
	select {
	case <-pub.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the kicked publisher kept publishing")
	}
}
