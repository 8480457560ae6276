package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"peer/ingress/admit"
)

// TestTokenPerAppKey: `peer --config FILE token publish APP/STREAM` signs with the app's own
// key from the apps section, and with the node-wide key for other apps.
func TestTokenPerAppKey(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "peer.yaml")
	if err := os.WriteFile(cfg, []byte("token-publish-key: node-key\napps:\n  live:\n    token-publish-key: live-key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := buildPeer(t)
	for scope, key := range map[string]string{"live/x": "live-key", "other/x": "node-key"} {
		out, err := exec.Command(bin, "--config", cfg, "token", "publish", scope).Output()
		if err != nil {
			t.Fatalf("%s: %v", scope, err)
		}
		tok := strings.TrimSpace(string(out))
		if err := admit.VerifyToken([]byte(key), admit.KindPublish, scope, tok, time.Now()); err != nil {
			t.Errorf("%s: not signed with %s: %v", scope, key, err)
		}
	}
}
