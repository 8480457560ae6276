package rtmp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"peer/media"
	"peer/media/flv"
	"peer/media/netio"
	"peer/media/rtmp/chunk"
)

// Wire is one RTMP connection after the handshake: the chunk reader, and control and
// command messages chunked into a buffer that Flush sends. Every write goes through one
// netio.Writer, so media a nonblocking write left behind goes out before anything else.
// Server sessions and clients share it; callers serialize writes. The zero Wire is
// ready for Init.
type Wire struct {
	conn     net.Conn
	r        *chunk.Reader
	out      []byte // chunks of control and command messages not yet sent
	outChunk int    // chunk size of the messages in out
	vec      *netio.Writer
	otherOut uint64 // bytes of control and command messages sent
	mediaOut uint64 // media bytes sent (WriteTags, TryWriteTags)
}

// Init sets up the chunk layers of conn with the reader's limits; writes that make no
// progress for writeTimeout fail. ack sends an acknowledgement when the peer's window
// fills (it must take whatever lock guards writes).
func (c *Wire) Init(conn net.Conn, writeTimeout time.Duration, limits chunk.Limits, ack func(uint32) error) {
	c.conn = conn
	c.vec = netio.New(conn, writeTimeout)
	c.r = chunk.NewReader(netio.NewReader(conn), limits, ack)
	c.outChunk = chunk.DefaultChunkSize
}

// ChunkReader is the connection's chunk reader (nil before Init): read messages, and
// set its limits and count its bytes.
func (c *Wire) ChunkReader() *chunk.Reader { return c.r }

// SetOutChunkSize sets the chunk size of the messages written from now on; the peer
// must have been told with SetChunkSize.
func (c *Wire) SetOutChunkSize(n int) { c.outChunk = n }

// Write chunks messages into the buffer and flushes it.
func (c *Wire) Write(msgs ...*chunk.Message) error {
	for _, m := range msgs {
		c.out = chunk.AppendMessage(c.out, m, c.outChunk)
	}
	return c.Flush()
}

// BytesOut is every byte sent on the connection after the handshake.
func (c *Wire) BytesOut() uint64 { return c.otherOut + c.mediaOut }

// Flush sends media left pending and the buffered messages.
func (c *Wire) Flush() error {
	_, err := c.flushMedia()
	return err
}

// flushMedia sends media left pending and then the buffered messages; it returns the
// media bytes among them.
func (c *Wire) flushMedia() (int64, error) {
	iov := netio.Vectors()
	defer netio.PutVectors(iov)
	if len(c.out) > 0 {
		*iov = append(*iov, c.out)
	}
	n, err := c.vec.Write(*iov)
	media := max(n-int64(len(c.out)), 0)
	c.mediaOut += uint64(media)
	c.otherOut += uint64(n - media)
	c.out = nil // control and command messages are few: a player's connection keeps no buffer for them
	return media, err
}

// Control applies a protocol control message (chunk size, window, abort, ping; acks and
// peer bandwidth need nothing) and reports whether msg was one. send answers pings.
func (c *Wire) Control(msg *chunk.Message, send func(*chunk.Message) error) (bool, error) {
	body := msg.Body
	switch msg.Type {
	case TypeSetChunkSize:
		if len(body) < 4 {
			return true, errors.New("short SetChunkSize")
		}
		n := binary.BigEndian.Uint32(body) & 0x7fffffff
		if n < 1 || n > maxChunkSize {
			return true, fmt.Errorf("chunk size %d out of range", n)
		}
		return true, c.r.SetChunkSize(n)
	case typeAbort:
		if len(body) >= 4 {
			c.r.Abort(binary.BigEndian.Uint32(body))
		}
	case typeWindowAckSize:
		if len(body) >= 4 {
			c.r.SetWindowAckSize(binary.BigEndian.Uint32(body))
		}
	case typeUserControl:
		if len(body) >= 6 && binary.BigEndian.Uint16(body) == userPingRequest {
			return true, send(UserControl(userPingResponse, binary.BigEndian.Uint32(body[2:])))
		}
	case typeAck, typeSetPeerBW:
	default:
		return false, nil
	}
	return true, nil
}

// Chunk streams of media written by WriteTags, apart from those of commands.
const (
	csidAudio = 4
	csidVideo = 6
	csidData  = 8
)

// WriteTags sends tags as RTMP messages on the media stream with one writev, blocking,
// and returns the media bytes sent (a rest TryWriteTags left pending included). Each
// message is a type-0 chunk header and type-3 continuation headers around slices of the
// tag's own bytes: the payload shared by every player is never copied.
func (c *Wire) WriteTags(tags []*flv.Tag) (int64, error) {
	flushed, err := c.flushMedia() // first: what an earlier write left pending
	if err != nil || len(tags) == 0 {
		return flushed, err
	}
	iov := netio.Vectors()
	defer netio.PutVectors(iov)
	*iov = chunkTags(*iov, tags)
	n, err := c.vec.Write(*iov)
	c.mediaOut += uint64(n)
	return flushed + n, err
}

// TryWriteTags is WriteTags without blocking, for a media.Sink: what the socket does
// not take stays pending for the player's goroutine (WriteTags sends it first). With
// something already pending it writes nothing and reports the connection busy.
func (c *Wire) TryWriteTags(tags []*flv.Tag) (int, media.SinkResult, error) {
	if c.vec.Pending() {
		return 0, media.SinkBusy, nil
	}
	iov := netio.Vectors()
	defer netio.PutVectors(iov)
	*iov = chunkTags(*iov, tags)
	n, complete, err := c.vec.TryWrite(*iov)
	c.mediaOut += uint64(n)
	return n, media.WriteResult(complete), err
}

// chunkTags appends the chunks of tags to iov (netio.Vectors' scratch: what a write
// leaves pending the netio.Writer copies, and the headers and payloads are the tags').
func chunkTags(iov [][]byte, tags []*flv.Tag) [][]byte {
	for _, t := range tags {
		iov = appendChunks(iov, t)
	}
	return iov
}

// appendChunks appends the chunks of one tag: its chunk headers, made once per tag
// (chunkHeaders) and shared by every player, around slices of the tag's own bytes.
func appendChunks(iov [][]byte, t *flv.Tag) [][]byte {
	heads := t.Framing(chunkHeaders)
	body := t.Data()
	first := len(heads) // the format 0 header; continuation headers follow it
	if n := len(body); n > OutChunkSize {
		first -= (n - 1) / OutChunkSize * continuationLen(uint32(t.Time))
	}
	iov = append(iov, heads[:first:first])
	heads = heads[first:]
	for off := 0; off < len(body); off += OutChunkSize {
		if off > 0 {
			k := continuationLen(uint32(t.Time))
			iov = append(iov, heads[:k:k])
			heads = heads[k:]
		}
		iov = append(iov, body[off:min(off+OutChunkSize, len(body))])
	}
	return iov
}

// chunkHeaders is t's format 0 chunk header followed by the format 3 headers of its
// continuation chunks, at OutChunkSize, on the chunk stream of its type: the same bytes
// for every player (the stream's times and stream id are not rebased per player).
func chunkHeaders(t *flv.Tag) []byte {
	csid := uint32(csidVideo)
	switch t.Type {
	case flv.TypeAudio:
		csid = csidAudio
	case flv.TypeScript:
		csid = csidData
	}
	ts, n := uint32(t.Time), t.Size()
	b := chunk.AppendHeader(make([]byte, 0, 16), csid, ts, n, t.Type, MediaStreamID)
	for off := OutChunkSize; off < n; off += OutChunkSize {
		b = chunk.AppendContinuation(b, csid, ts)
	}
	return b
}

// continuationLen is the length of a format 3 header on the media chunk streams.
func continuationLen(ts uint32) int {
	if ts >= 0xffffff {
		return 5
	}
	return 1
}
