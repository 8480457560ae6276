package media

import (
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestPerAppConfig: a stream of an app takes its app's player queue and merge-write
// when created; a stream of another app keeps the hub's.
func TestPerAppConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ForApp = func(app string, c *Config) {
		if app == "live" {
			c.QueueTags, c.MergeWrite = 64, 100*time.Millisecond
		}
	}
	h := NewHub(cfg, zap.NewNop())
	lpl, _ := h.Play("live", "a", PlayOptions{Kind: "test", Remote: "p"})
	defer lpl.Close()
	opl, _ := h.Play("other", "a", PlayOptions{Kind: "test", Remote: "p"})
	defer opl.Close()
	ls, os := lpl.Stream(), opl.Stream()
	if lpl.limit != 64 || opl.limit != cfg.QueueTags || ls.cfg.mergeWrite != 100*time.Millisecond || os.cfg.mergeWrite != 0 {
		t.Fatalf("queues %d and %d, merge-write %v and %v", lpl.limit, opl.limit, ls.cfg.mergeWrite, os.cfg.mergeWrite)
	}
}
