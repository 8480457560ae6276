package hls

import (
	"bytes"
	"peer/media/mpegts"
	"testing"
	"time"

	"peer/media/flv"
	"peer/media/internal/allocs"
)

// FuzzParseCutMarker: an onHLSCut marker from an upstream node. No panic, the target
// it carries is clamped by the follower, and a marker re-encoded from what was parsed
// parses again.
func FuzzParseCutMarker(f *testing.F) {
	f.Add(CutMarker(Cut{Seq: 7, Discontinuity: true, DiscSeq: 2, Target: 2, TS: mpegts.State{VideoCC: 3}}, 0).Data())
	f.Add(CutMarker(Cut{Seq: 1 << 60, Target: 22947778, TS: mpegts.NoState}, 0).Data())
	f.Add(append(append([]byte{}, cutPrefix...), amfObject, 0xff, 0xff))
	f.Fuzz(func(t *testing.T, data []byte) {
		tag := flv.NewTag(flv.TypeScript, 0, data)
		var c Cut
		var ok bool
		if n := allocs.Of(func() { c, ok = ParseCutMarker(tag) }); n > allocs.Bound(len(data)) {
			t.Fatalf("a %d-byte marker allocated %d", len(data), n)
		}
		if !ok {
			return
		}
		if _, ok := ParseCutMarker(CutMarker(c, 0)); !ok {
			t.Fatalf("re-encoded %+v does not parse", c)
		}
	})
}

// FuzzMuxer feeds a leader and a follower the same tags, built from the input: records
// of [type, time step, length, body]. No panic, and the open segment stays under its cap
// plus one tag.
func FuzzMuxer(f *testing.F) {
	// typ 0 is audio, 1 video, 2 script data.
	rec := func(typ, step byte, body []byte) []byte { return append([]byte{typ, step, byte(len(body))}, body...) }
	var seed []byte
	seed = append(seed, rec(1, 0, avcSeq64)...)
	seed = append(seed, rec(0, 0, []byte{0xaf, 0, 0x12, 0x08, 0x56, 0xe5, 0x00})...)
	seed = append(seed, rec(1, 0, []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88})...)
	for range 20 {
		seed = append(seed, rec(0, 23, []byte{0xaf, 1, 0x21, 0x10, 4})...)
		seed = append(seed, rec(1, 200, []byte{0x27, 1, 0, 0, 0, 0, 0, 0, 2, 0x41, 0x9a})...)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		const capBytes = 4 << 10
		leader := New(Config{Fragment: time.Second, Window: 3, MaxSegmentBytes: capBytes}, nil)
		defer leader.Close()
		var markers []*flv.Tag
		leader.cfg.OnCut = func(m *flv.Tag) { markers = append(markers, m) }
		follower := New(Config{Fragment: time.Second, Window: 3, Follow: true, MaxSegmentBytes: capBytes}, nil)
		defer follower.Close()
		var ms int64
		for len(data) >= 3 {
			typ, step, n := data[0], data[1], int(data[2])
			data = data[3:]
			n = min(n, len(data))
			body := data[:n]
			data = data[n:]
			ms += int64(int8(step)) * 10 // forward and back
			tag := flv.NewTag([...]uint8{flv.TypeAudio, flv.TypeVideo, flv.TypeScript}[typ%3], ms, body)
			leader.WriteTag(tag)
			for _, m := range markers {
				follower.WriteTag(m)
			}
			markers = markers[:0]
			follower.WriteTag(tag)
			for _, m := range []*Muxer{leader, follower} {
				if c := m.cur; c != nil && c.buf.Len() > capBytes+64<<10 {
					t.Fatalf("open segment of %d bytes, cap %d", c.buf.Len(), capBytes)
				}
			}
		}
		if p, ok := leader.Playlist(); ok && !bytes.HasPrefix(p, []byte("#EXTM3U")) {
			t.Fatalf("playlist %q", p)
		}
	})
}
