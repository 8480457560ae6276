// Package ingest is the adapter layer between the protocols streams arrive by and the
// media core: an adapter reads one protocol's media as FLV tags (Reader), and Pump
// feeds a media.Publisher from it. A protocol's media is never turned into another
// protocol's messages on the way in.
//
// To add an ingest protocol (SRT, WHIP, ...):
//   - write its adapter next to its codec under media/ (media/rtmp's Client.ReadTag and
//     MediaTag, NewFLV here): something that yields Tags, one per audio, video or
//     script message, with the FLV tag body of the codec (media/flv's layout);
//   - write its server under ingress/ that accepts connections, asks the node's Router
//     for a publisher (Router.Publish: the path every user publish takes, so placement,
//     relays and fencing apply), and runs Pump (or, for a protocol whose connection
//     interleaves commands with media, writes each Tag itself as Pump does);
//   - wire the server in node.
//
// Nothing else changes: the hub, its players and packagers read the tags whatever the
// protocol was. The package sits below the servers (ingress/*) and the cluster's data
// plane (placement/dataplane), which both feed publishers through it, and above the
// media core. It is its own leaf beside the core rather than a file in package media so
// that the core does not learn of protocols and this contract stays this small. It may
// import the media core and media/flv only.
package ingest

import (
	"io"

	"peer/media"
	"peer/media/flv"
)

// Tag is one media message of an ingest protocol in the form the media core takes: the
// type, time and data of an FLV tag, before the core serializes it (once, for every
// player). Data is the adapter's: valid until its next Read.
type Tag struct {
	Type uint8 // flv.TypeAudio, flv.TypeVideo or flv.TypeScript
	// Time is the 32-bit millisecond time of RTMP and FLV; the publisher extends it past
	// the 2^32 wrap.
	Time uint32
	Data []byte
}

// Reader is an ingest protocol's adapter: it reads one incoming stream's media.
type Reader interface {
	// ReadTag returns the next media message, or the error that ended the stream.
	ReadTag() (Tag, error)
}

// Write publishes one tag.
func Write(pub *media.Publisher, t Tag) { pub.Write(t.Type, t.Time, t.Data) }

// Pump feeds pub from r until r fails, and returns r's error.
func Pump(r Reader, pub *media.Publisher) error {
	for {
		t, err := r.ReadTag()
		if err != nil {
			return err
		}
		Write(pub, t)
	}
}

// NewFLV is the adapter of an FLV byte stream (HTTP-FLV, an FLV file): the file
// header, then tags, read with media/flv's bounded reader. Tags of types other than
// audio, video and script data are skipped.
func NewFLV(r io.Reader) Reader { return flvReader{flv.NewReader(r)} }

type flvReader struct{ r *flv.Reader }

func (f flvReader) ReadTag() (Tag, error) {
	for {
		t, err := f.r.Read()
		if err != nil {
			return Tag{}, err
		}
		switch t.Type {
		case flv.TypeAudio, flv.TypeVideo, flv.TypeScript:
			return Tag{Type: t.Type, Time: uint32(t.Time), Data: t.Data()}, nil
		}
	}
}
