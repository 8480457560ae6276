package media

import "peer/media/flv"

// Packager is a reader of one stream that turns its tags into another output: HLS
// segments today, fMP4 or a recording later. A hub makes one per stream and packager
// kind (Config.Packagers).
//
// The publisher's goroutine calls Before, Write, Attach and Discontinuity, one call at
// a time (the stream's write lock), and Close after the last of them: a packager needs
// no lock of its own for its writer side. Discontinuity may be called with the stream's
// lock held, so no method may call back into the stream but Stream.WatchedWithin.
//
// A packager may need the hubs that carry a copy of the stream to package it alike
// (HLS segments with the same names and bytes on every node). It then sends in-band
// control tags: script tags it makes in Before, which the stream sends to its links
// (PlayOptions.Link) ahead of the tag they precede, keeps in its GOP cache ahead of the
// keyframe they precede, and never sends to viewers. On the far end they arrive in a
// Copy source, and that stream's packager, recognizing them (IsControl), follows them.
// What a control tag means is the packager's business.
type Packager interface {
	// Before sees t before the players get it and may return a control tag to send ahead
	// of t (nil: none).
	Before(t *flv.Tag) (control *flv.Tag)
	// Write packages t after the players got it: they never wait for the packaging. A
	// Copy source's control tags come here too, ahead of the tag they precede; an
	// origin's are dropped, and a packager's own control tags never come back to it.
	Write(t *flv.Tag)
	// IsControl reports a script tag body that is one of this packager's control tags.
	IsControl(data []byte) bool
	// Attach tells of a new publisher: a Copy is packaged by its source, whose control
	// tags to follow; an origin's packager decides on its own.
	Attach(src Source)
	// Discontinuity tells that the origin's timeline or codec configuration changed. A
	// Copy's discontinuities come in its control tags.
	Discontinuity()
	// Close releases the packager when the hub drops the stream.
	Close()
}

// NewPackager makes a packager for a new stream. It may keep s for its App, Name and
// WatchedWithin; it must not write to it.
type NewPackager func(s *Stream) Packager
