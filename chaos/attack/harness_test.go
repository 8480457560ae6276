package attack

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"peer/chaos/avtest"
	"peer/chaos/procs"
)

var peerBin string

// TestMain builds the peer binary once, or takes PEER_BIN.
func TestMain(m *testing.M) {
	os.Exit(procs.RunWithBinary(m, "../..", &peerBin, func() error { return goleak.Find() }))
}

// legitStream is the stream every target publishes before an attack.
const legitStream = "live/legit"

// target is a running cluster under attack with a legitimate publisher on its first node.
type target struct {
	t     *testing.T
	c     *procs.Cluster
	nodes []*procs.Node
	pub   *avtest.Proc
}

// newTarget starts n peer processes (the first runs, the others join it), each with
// extra flags, and publishes legitStream with ffmpeg to the first one.
func newTarget(t *testing.T, n int, extra ...string) *target {
	t.Helper()
	avtest.RequireTools(t)
	c := &procs.Cluster{Bin: peerBin, Key: "attack-test-key", Dir: t.TempDir()}
	tg := &target{t: t, c: c}
	t.Cleanup(func() {
		if tg.pub != nil {
			tg.pub.Stop()
		}
		for _, nd := range c.Nodes {
			if log := nd.Logs(); strings.Contains(log, "DATA RACE") || strings.Contains(log, "panic:") {
				t.Errorf("%s logged a data race or a panic", nd.Name)
			}
		}
		if t.Failed() {
			for _, nd := range c.Nodes {
				t.Logf("---- log of %s (last 6000 bytes):\n%s", nd.Name, tail(nd.Logs(), 6000))
			}
		}
		c.StopAll()
	})
	for i := range n {
		nd := c.NewNode(fmt.Sprintf("n%d", i+1), extra...)
		var seeds []string
		if i > 0 {
			seeds = []string{c.Nodes[0].Gossip}
		}
		if err := nd.Start(seeds...); err != nil {
			t.Fatal(err)
		}
	}
	tg.nodes = c.Nodes
	eventually(t, 30*time.Second, "an agreed cluster view", func() bool {
		_, ok := procs.Agreed(context.Background(), tg.nodes, min(n, 3))
		return ok
	})
	p, err := avtest.Publish(tg.rtmpURL(0, legitStream), avtest.PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tg.pub = p
	eventually(t, 20*time.Second, "the legit stream in the cluster view", func() bool {
		v, err := tg.nodes[0].View(context.Background())
		if err != nil {
			return false
		}
		_, ok := v.Stream(legitStream)
		return ok
	})
	return tg
}

func (tg *target) rtmpURL(i int, stream string) string {
	return "rtmp://" + tg.nodes[i].RTMP + "/" + stream
}

func (tg *target) httpURL(i int, path string) string { return "http://" + tg.nodes[i].HTTP + path }

// rssKiB is node i's resident set size now.
func (tg *target) rssKiB(i int) int64 {
	tg.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tg.nodes[i].PID()))
	if err != nil {
		tg.t.Fatalf("%s: %v", tg.nodes[i].Name, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb
		}
	}
	tg.t.Fatalf("%s: no VmRSS", tg.nodes[i].Name)
	return 0
}

// attack runs fn against node i and then checks that the node survived it: the process
// runs, its API answers, the legit stream plays over RTMP and HTTP-FLV from node i, and
// its RSS grew by less than boundMiB. It logs one ATTACK row with the result.
func (tg *target) attack(i int, name string, boundMiB int64, fn func()) {
	t := tg.t
	t.Helper()
	before := tg.rssKiB(i)
	fn()
	if !tg.nodes[i].Running() {
		t.Fatalf("attack %q: %s is no longer running", name, tg.nodes[i].Name)
	}
	tg.apiAnswers(i)
	avtest.CheckPlayable(t, tg.rtmpURL(i, legitStream), 0)
	avtest.CheckPlayable(t, tg.httpURL(i, "/"+legitStream+".flv"), 0)
	after := tg.rssKiB(i)
	t.Logf("ATTACK | %s | node up, API answers, legit stream plays | RSS %d -> %d KiB (bound +%d MiB)",
		name, before, after, boundMiB)
	if grown := after - before; grown > boundMiB*1024 {
		t.Fatalf("attack %q: RSS grew by %d KiB, bound %d MiB", name, grown, boundMiB)
	}
}

// apiAnswers checks that node i's API answers within a few seconds.
func (tg *target) apiAnswers(i int) {
	tg.t.Helper()
	cl := http.Client{Timeout: 5 * time.Second}
	var lastErr error
	for range 5 {
		resp, err := cl.Get(tg.httpURL(i, "/api/v1/versions"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		lastErr = err
		time.Sleep(500 * time.Millisecond)
	}
	tg.t.Fatalf("%s: API does not answer: %v", tg.nodes[i].Name, lastErr)
}

func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
