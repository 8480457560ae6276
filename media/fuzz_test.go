package media

import (
	"context"
	"testing"

	"go.uber.org/zap"

	"peer/media/flv"
	"peer/media/internal/allocs"
)

// FuzzCodecInfo: the sequence headers a publisher sends, as the API's Info reads them
// (avcC with its SPS, AudioSpecificConfig). No panic.
func FuzzCodecInfo(f *testing.F) {
	f.Add(avcSeq[5:], []byte{0x12, 0x10})
	f.Add([]byte{1, 0x42, 0xc0, 0x0a, 0xff, 0xe1, 0, 0x15, 0x67, 0x42, 0xc0, 0x0a, 0xda, 0x11, 0xec, 0x04, 0x40, 0, 0, 3, 0, 0x40, 0, 0, 5, 3, 0xc4, 0x89, 0xa8, 1, 0, 4, 0x68, 0xce, 0x0f, 0xc8},
		[]byte{0x12, 0x08, 0x56, 0xe5, 0})
	f.Add([]byte{1, 0, 0, 0, 0, 0xff, 0xff, 0xff}, []byte{0xf8, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, avcc, asc []byte) {
		var i Info
		video := flv.NewTag(flv.TypeVideo, 0, append([]byte{0x17, 0, 0, 0, 0}, avcc...))
		audio := flv.NewTag(flv.TypeAudio, 0, append([]byte{0xaf, 0}, asc...))
		n := allocs.Of(func() {
			i.fromVideoConfig(video)
			i.fromAudioConfig(audio)
		})
		if n > allocs.Bound(len(avcc)+len(asc)) {
			t.Fatalf("%d bytes of configuration allocated %d", len(avcc)+len(asc), n)
		}
		if sps := FirstSPS(avcc); len(sps) > len(avcc) {
			t.Fatal("SPS longer than its record")
		}
	})
}

// FuzzPublish sends a user's publisher arbitrary audio and video messages with arbitrary
// timestamps (records of [type, 4-byte timestamp, length, body]); a player receives them.
// No panic, the GOP cache stays within its tag bound, and the player's time never
// steps back by more than the rebasing bound.
func FuzzPublish(f *testing.F) {
	rec := func(video bool, ts uint32, body []byte) []byte {
		typ := byte(0)
		if video {
			typ = 1
		}
		return append([]byte{typ, byte(ts >> 24), byte(ts >> 16), byte(ts >> 8), byte(ts), byte(len(body))}, body...)
	}
	var seed []byte
	seed = append(seed, rec(true, 0, avcSeq)...)
	seed = append(seed, rec(false, 0, aacSeq)...)
	seed = append(seed, rec(true, 0, keyframe)...)
	seed = append(seed, rec(true, 0x7fffffff, interFr)...)
	seed = append(seed, rec(false, 23, aacFrame)...)
	seed = append(seed, rec(true, 40, interFr)...)
	seed = append(seed, rec(true, 0xfffffff0, keyframe)...)
	seed = append(seed, rec(false, 5, aacFrame)...)
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := DefaultConfig()
		cfg.QueueTags = 64
		h := NewHub(cfg, zap.NewNop())
		defer h.closeAll()
		pl, _ := h.Play("live", "a", PlayOptions{Kind: "test"})
		pub, _ := h.Publish("live", "a", "127.0.0.1:1", Origin)
		defer pub.Close()
		last := map[uint8]int64{}
		var buf []*flv.Tag
		drained, cancel := context.WithCancel(context.Background())
		cancel() // Next returns what is queued without waiting
		for len(data) >= 6 {
			typ := flv.TypeAudio
			if data[0]&1 == 1 {
				typ = flv.TypeVideo
			}
			ts := uint32(data[1])<<24 | uint32(data[2])<<16 | uint32(data[3])<<8 | uint32(data[4])
			n := min(int(data[5]), len(data)-6)
			pub.Write(typ, ts, data[6:6+n])
			data = data[6+n:]
			buf, _ = pl.Next(drained, buf[:0])
			for _, tag := range buf {
				if isConfig(tag) {
					continue
				}
				if prev, ok := last[tag.Type]; ok && tag.Time < prev-maxBackwardStep {
					t.Fatalf("%d ms after %d", tag.Time, prev)
				}
				last[tag.Type] = tag.Time
			}
		}
		s := h.Lookup("live", "a")
		s.mu.Lock()
		n := len(s.gop.tags())
		s.mu.Unlock()
		if n > cfg.QueueTags-cfg.QueueTags/4 {
			t.Fatalf("GOP cache of %d tags", n)
		}
	})
}
