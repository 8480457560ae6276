package node

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"peer/conf"
)

// The key a node runs with: the flag's; else the one kept in the data dir; else none on
// loopback-only cluster ports; else `peer run` generates and keeps one (0600) and
// `peer join` refuses.
func TestClusterKey(t *testing.T) {
	cfg := func(gossip, raft, key string) conf.Node {
		return conf.Node{Name: "n", Data: filepath.Join(t.TempDir(), "n"), Gossip: gossip, Raft: raft, ClusterKey: key}
	}
	for _, tc := range []struct {
		name         string
		cfg          conf.Node
		join         bool
		want         keySource
		wantErr      error
		keyGenerated bool
	}{
		{"flag", cfg("0.0.0.0:7946", "0.0.0.0:7947", "k"), true, keyFlag, nil, false},
		{"loopback run", cfg("127.0.0.1:7946", "127.0.0.2:7947", ""), false, keyNone, nil, false},
		{"localhost and ::1 join", cfg("localhost:7946", "[::1]:7947", ""), true, keyNone, nil, false},
		{"all interfaces join", cfg("0.0.0.0:7946", "127.0.0.1:7947", ""), true, 0, ErrKeyRequired, false},
		{"empty host join", cfg(":7946", ":7947", ""), true, 0, ErrKeyRequired, false},
		{"private address run", cfg("127.0.0.1:7946", "10.0.0.1:7947", ""), false, keyGenerated, nil, true},
	} {
		key, src, err := clusterKey(tc.cfg, tc.join)
		if !errors.Is(err, tc.wantErr) || (err == nil && src != tc.want) {
			t.Errorf("%s: source %d, %v; want %d, %v", tc.name, src, err, tc.want, tc.wantErr)
			continue
		}
		path := filepath.Join(tc.cfg.DataDir(), keyFile)
		st, statErr := os.Stat(path)
		if tc.keyGenerated != (statErr == nil) {
			t.Errorf("%s: key file %v", tc.name, statErr)
		}
		if !tc.keyGenerated {
			continue
		}
		if st.Mode().Perm() != 0o600 || len(key) < 32 {
			t.Errorf("%s: key %q, file mode %v", tc.name, key, st.Mode())
		}
		// Kept: the next start (run or join, whatever its ports) uses it.
		again, src, err := clusterKey(tc.cfg, true)
		if err != nil || src != keyStored || again != key {
			t.Errorf("%s: restart got %q (%d, %v), want the kept %q", tc.name, again, src, err, key)
		}
	}
}
