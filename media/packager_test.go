package media

import (
	"bytes"

	"peer/media/flv"
)

// ctlPrefix opens the body of testPackager's control tags (an AMF0 string "ctl").
var ctlPrefix = []byte{0x02, 0, 3, 'c', 't', 'l'}

// ctlTag is a control tag of testPackager's at timeMS.
func ctlTag(timeMS int64) *flv.Tag {
	return flv.NewTag(flv.TypeScript, timeMS, append(bytes.Clone(ctlPrefix), byte(timeMS)))
}

func isCtl(t *flv.Tag) bool { return t.Type == flv.TypeScript && bytes.HasPrefix(t.Data(), ctlPrefix) }

// testPackager stands for a packager (HLS) in the core's tests: as an origin's it sends
// a control tag ahead of every keyframe, it records what it is written, and it panics
// on a write after Close (a packager is single-writer and closed after the last write).
type testPackager struct {
	copied  bool
	closed  bool
	written []*flv.Tag
	discs   int
}

// packagedConfig is DefaultConfig with a testPackager for every stream, reachable from
// the stream (Stream.Packagers).
func packagedConfig() Config {
	c := DefaultConfig()
	c.Packagers = []NewPackager{func(*Stream) Packager { return &testPackager{} }}
	return c
}

func (p *testPackager) Before(t *flv.Tag) *flv.Tag {
	if !p.copied && t.IsKeyframe() {
		return ctlTag(t.Time)
	}
	return nil
}

func (p *testPackager) Write(t *flv.Tag) {
	if p.closed {
		panic("packager written after Close")
	}
	if len(p.written) < 1024 {
		p.written = append(p.written, t)
	}
}

func (p *testPackager) IsControl(data []byte) bool { return bytes.HasPrefix(data, ctlPrefix) }
func (p *testPackager) Attach(src Source)          { p.copied = src == Copy }
func (p *testPackager) Discontinuity()             { p.discs++ }
func (p *testPackager) Close()                     { p.closed = true }
