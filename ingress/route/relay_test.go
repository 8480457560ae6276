package route

import (
	"errors"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"peer/media"
	"peer/media/flv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A relay delivering to this node's own hub must notice when the node is fenced off or
// the sink closed: local writes never fail by themselves, and a relay that keeps writing
// into a kicked publisher never re-points (chaos seed 7: a relayed publisher stayed
// connected, its stream dead, after its node was frozen).
func TestLocalSinkFailsOnceKickedOrClosed(t *testing.T) {
	tag := flv.NewTag(flv.TypeVideo, 0, []byte{0x17, 1, 0, 0, 0})
	for _, end := range []string{"kick", "close"} {
		h := media.NewHub(media.DefaultConfig(), zap.NewNop())
		pub, err := h.Publish("live", "a", "relay", media.User)
		if err != nil {
			t.Fatal(err)
		}
		finished := 0
		s := localSink{pub: pub, finish: func() { finished++ }, self: "n1", closed: new(atomic.Bool)}
		if err := s.write([]*flv.Tag{tag}); err != nil {
			t.Fatalf("write to a live local sink: %v", err)
		}
		if end == "kick" {
			h.Kick("live", "a", nil, errors.New("fenced"))
		} else {
			s.close()
			s.close()
		}
		if err := s.write([]*flv.Tag{tag}); !errors.Is(err, errLocalSinkGone) {
			t.Fatalf("write after %s: %v, want errLocalSinkGone", end, err)
		}
		if end == "close" && finished != 1 {
			t.Fatalf("finish ran %d times, want once", finished)
		}
	}
}
