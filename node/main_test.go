package node

import (
	"context"
	"io"
	"net/http"
	"os"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"peer/chaos/procs"
	"peer/conf"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testNode is a node on loopback ports chosen by the kernel, with its log captured.
type testNode struct {
	*Node
	logs   *observer.ObservedLogs
	cancel context.CancelFunc
	done   chan error
}

func startNode(t *testing.T, mutate func(*conf.Node)) *testNode {
	t.Helper()
	cfg := conf.Defaults()
	cfg.Name = "t-" + strings.ReplaceAll(t.Name(), "/", "-")
	cfg.RTMP, cfg.HTTP = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Gossip, cfg.Raft = procs.FreeAddr(), procs.FreeAddr()
	cfg.Data = t.TempDir()
	if mutate != nil {
		mutate(&cfg)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(zapcore.NewTee(core, zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()),
		zapcore.AddSync(testWriter{t}), zapcore.InfoLevel)))
	n, err := New(cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn := &testNode{Node: n, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { tn.done <- n.Run(ctx) }()
	t.Cleanup(tn.stop)
	return tn
}

func (tn *testNode) stop() {
	tn.cancel()
	select {
	case <-tn.done:
	case <-time.After(10 * time.Second):
		pprof.Lookup("goroutine").WriteTo(os.Stderr, 1) // who is still running
		panic("node did not stop within 10 s")
	}
}

func (tn *testNode) rtmpURL(stream string) string { return "rtmp://" + tn.RTMPAddr() + "/" + stream }
func (tn *testNode) httpURL(path string) string   { return "http://" + tn.HTTPAddr() + path }

// logged reports whether a log line contains all of the given substrings in its message
// or fields.
func (tn *testNode) logged(parts ...string) bool {
	for _, e := range tn.logs.All() {
		line := e.Message
		for _, f := range e.Context {
			line += " " + f.Key + "=" + f.String
			if f.Interface != nil {
				if err, ok := f.Interface.(error); ok {
					line += err.Error()
				}
			}
		}
		ok := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if os.Getenv("PEER_TEST_LOG") != "" {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func httpGet(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}
