package hls

import (
	"bytes"
	"testing"
	"time"

	"peer/media/flv"
	"peer/media/internal/allocs"
)

// Seeds shared by the fuzz targets: an avcC record and an AudioSpecificConfig of the
// kind ffmpeg sends (more, from a real capture, are in testdata/fuzz).
var (
	seedAVCC = []byte{0x01, 0x42, 0xc0, 0x0a, 0xff, 0xe1, 0x00, 0x15, 0x67, 0x42, 0xc0, 0x0a, 0xda, 0x11, 0xec, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00, 0x05, 0x03, 0xc4, 0x89, 0xa8, 0x01, 0x00, 0x04, 0x68, 0xce, 0x0f, 0xc8}
	seedASC  = []byte{0x12, 0x08, 0x56, 0xe5, 0x00}
)

// FuzzParseAVCC: an AVC sequence header from a publisher. No panic; what is kept is no
// larger than the record plus a start code per parameter set.
func FuzzParseAVCC(f *testing.F) {
	f.Add(seedAVCC)
	f.Add([]byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, rec []byte) {
		var c *avcConfig
		var err error
		if n := allocs.Of(func() { c, err = parseAVCC(rec) }); n > allocs.Bound(len(rec)) {
			t.Fatalf("a %d-byte record allocated %d", len(rec), n)
		}
		if err != nil {
			return
		}
		if len(c.paramSets) > 3*len(rec) || c.lengthSize < 1 || c.lengthSize > 4 {
			t.Fatalf("%d bytes of parameter sets, length size %d, from a %d-byte record", len(c.paramSets), c.lengthSize, len(rec))
		}
	})
}

// FuzzAnnexB: a frame in AVCC (length-prefixed NAL units) to Annex-B. No panic, and the
// output is bounded by the input: each NAL unit gains at most a start code.
func FuzzAnnexB(f *testing.F) {
	f.Add(uint8(3), []byte{0, 0, 0, 2, 0x65, 0x88, 0, 0, 0, 1, 0x09})
	f.Add(uint8(0), []byte{1, 0x41, 1, 0x65, 0})
	f.Add(uint8(1), []byte{0xff, 0xff, 0x65})
	c, err := parseAVCC(seedAVCC)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, lengthSize uint8, au []byte) {
		cfg := *c
		cfg.lengthSize = int(lengthSize%4) + 1
		var out []byte
		var err error
		if n := allocs.Of(func() { out, err = appendAnnexB(nil, &cfg, au) }); n > allocs.Bound(len(au)) {
			t.Fatalf("a %d-byte frame allocated %d", len(au), n)
		}
		if err != nil {
			return
		}
		if bound := len(aud) + len(cfg.paramSets) + 4*len(au); len(out) > bound {
			t.Fatalf("%d bytes out of %d in (bound %d)", len(out), len(au), bound)
		}
	})
}

// FuzzParseASC: an AAC sequence header, then ADTS framing with its configuration: no
// panic, and the ADTS header carries the frame's length.
func FuzzParseASC(f *testing.F) {
	f.Add(seedASC, []byte{0x21, 0x10, 0x04})
	f.Add([]byte{0xf8, 0xff, 0xff, 0xff}, []byte{})
	f.Fuzz(func(t *testing.T, asc, frame []byte) {
		var c *aacConfig
		var err error
		if n := allocs.Of(func() { c, err = parseASC(asc) }); n > allocs.Bound(len(asc)) {
			t.Fatalf("a %d-byte config allocated %d", len(asc), n)
		}
		if err != nil || len(frame) > maxADTSFrame {
			return
		}
		out := c.appendADTS(nil, frame)
		if n := int(out[3]&3)<<11 | int(out[4])<<3 | int(out[5])>>5; n != len(out) || n != len(frame)+7 {
			t.Fatalf("ADTS length %d for %d bytes", n, len(out))
		}
	})
}

// FuzzParseCutMarker: an onHLSCut marker from an upstream node. No panic, the target
// it carries is clamped by the follower, and a marker re-encoded from what was parsed
// parses again.
func FuzzParseCutMarker(f *testing.F) {
	f.Add(CutMarker(Cut{Seq: 7, Discontinuity: true, DiscSeq: 2, Target: 2, TS: TSState{VideoCC: 3}}, 0).Data())
	f.Add(CutMarker(Cut{Seq: 1 << 60, Target: 22947778, TS: noTS}, 0).Data())
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
	seed = append(seed, rec(1, 0, append([]byte{0x17, 0, 0, 0, 0}, seedAVCC...))...)
	seed = append(seed, rec(0, 0, append([]byte{0xaf, 0}, seedASC...))...)
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
