package mpegts

import (
	"testing"

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
		var c *AVCConfig
		var err error
		if n := allocs.Of(func() { c, err = ParseAVCC(rec) }); n > allocs.Bound(len(rec)) {
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
	c, err := ParseAVCC(seedAVCC)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, lengthSize uint8, au []byte) {
		cfg := *c
		cfg.lengthSize = int(lengthSize%4) + 1
		var out []byte
		var err error
		if n := allocs.Of(func() { out, err = AppendAnnexB(nil, &cfg, au) }); n > allocs.Bound(len(au)) {
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
		var c *AACConfig
		var err error
		if n := allocs.Of(func() { c, err = ParseASC(asc) }); n > allocs.Bound(len(asc)) {
			t.Fatalf("a %d-byte config allocated %d", len(asc), n)
		}
		if err != nil || len(frame) > MaxADTSFrame {
			return
		}
		out := c.AppendADTS(nil, frame)
		if n := int(out[3]&3)<<11 | int(out[4])<<3 | int(out[5])>>5; n != len(out) || n != len(frame)+7 {
			t.Fatalf("ADTS length %d for %d bytes", n, len(out))
		}
	})
}
