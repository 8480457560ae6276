package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"peer/chaos/avtest"
	"peer/chaos/procs"
	"peer/ingress/admit"
)

// TestRunConfigApps: `peer run --config` hands the file's apps section to the node: app
// live needs a publish token, app open does not.
func TestRunConfigApps(t *testing.T) {
	avtest.RequireTools(t)
	cfg := filepath.Join(t.TempDir(), "peer.yaml")
	if err := os.WriteFile(cfg, []byte("apps:\n  live:\n    token-publish-key: k\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := buildPeer(t)
	rtmpAddr := procs.FreeAddr()
	var logs syncBuffer
	cmd := exec.Command(bin, "run", "--config", cfg, "--name", "apps", "--rtmp", rtmpAddr, "--http", procs.FreeAddr(),
		"--gossip", procs.FreeAddr(), "--raft", procs.FreeAddr(), "--data", t.TempDir())
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	started := func(stream string) bool {
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "publish start") && strings.Contains(l, `"`+stream+`"`) {
				return true
			}
		}
		return false
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s:\n%s", what, logs.String())
			}
		}
	}
	publish := func(path string, o avtest.PublishOptions) *avtest.Proc {
		p, err := avtest.Publish("rtmp://"+rtmpAddr+"/"+path, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Stop)
		return p
	}
	publish("open/x", avtest.PublishOptions{})
	waitFor("open/x published without a token", func() bool { return started("open/x") })
	denied := publish("live/x", avtest.PublishOptions{Duration: 3 * time.Second})
	waitFor("ffmpeg refused on live/x", func() bool {
		select {
		case <-denied.Done():
			return true
		default:
			return false
		}
	})
	if started("live/x") {
		t.Fatalf("live/x published without a token:\n%s", logs.String())
	}
	tok := admit.MintToken([]byte("k"), admit.KindPublish, "live/x", time.Now().Add(time.Hour))
	publish("live/x?token="+tok, avtest.PublishOptions{})
	waitFor("live/x published with a token", func() bool { return started("live/x") })
}
