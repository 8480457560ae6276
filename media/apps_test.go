package media

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"peer/media/flv"
)

// TestPerAppConfig: a stream of an app takes its app's HLS fragment and window, player
// queue and merge-write when created; a stream of another app keeps the hub's.
func TestPerAppConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ForApp = func(app string, c *Config) {
		if app == "live" {
			c.HLS.Fragment, c.HLS.Window, c.QueueTags, c.MergeWrite = 4*time.Second, 2, 64, 100*time.Millisecond
		}
	}
	h := NewHub(cfg, zap.NewNop())
	live, err := h.Publish("live", "a", "x", User)
	if err != nil {
		t.Fatal(err)
	}
	other, err := h.Publish("other", "a", "x", User)
	if err != nil {
		t.Fatal(err)
	}
	live.Write(flv.TypeVideo, 0, avcSeq64)
	other.Write(flv.TypeVideo, 0, avcSeq64)
	for f := 0; f < 25*20; f++ { // 20 s at 25 fps, a keyframe every second
		ms, body := int64(f*40), interFr
		if f%25 == 0 {
			body = keyframe
		}
		live.WriteAt(flv.TypeVideo, ms, body)
		other.WriteAt(flv.TypeVideo, ms, body)
	}
	ls, os := h.Lookup("live", "a"), h.Lookup("other", "a")
	lp, ok := ls.HLS().Playlist()
	if !ok || !strings.Contains(string(lp), "#EXT-X-TARGETDURATION:4\n") || strings.Count(string(lp), "#EXTINF") != 2 {
		t.Fatalf("live's playlist, want 4 s segments, 2 of them:\n%s", lp)
	}
	op, ok := os.HLS().Playlist()
	if !ok || !strings.Contains(string(op), "#EXT-X-TARGETDURATION:2\n") || strings.Count(string(op), "#EXTINF") != 6 {
		t.Fatalf("other's playlist, want the hub's 2 s segments, 6 of them:\n%s", op)
	}
	lpl, _ := h.Play("live", "a", PlayOptions{Kind: "test", Remote: "p"})
	defer lpl.Close()
	opl, _ := h.Play("other", "a", PlayOptions{Kind: "test", Remote: "p"})
	defer opl.Close()
	if lpl.limit != 64 || opl.limit != cfg.QueueTags || ls.cfg.mergeWrite != 100*time.Millisecond || os.cfg.mergeWrite != 0 {
		t.Fatalf("queues %d and %d, merge-write %v and %v", lpl.limit, opl.limit, ls.cfg.mergeWrite, os.cfg.mergeWrite)
	}
}
