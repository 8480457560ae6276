// Package chunk is RTMP's chunk stream layer (RTMP specification 5.3): a Reader that
// reassembles messages from the chunks of a connection, and the header encoding that
// writers use.
//
// The Reader treats every byte as hostile. A message's memory grows only with the bytes
// of it that arrived (never with the length its header announces), a message larger
// than the current limit is refused at its first header, and the number of chunk
// streams and the bytes held for them per connection are capped.
//
// It is a leaf: the standard library only.
package chunk

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Message is one reassembled RTMP message.
type Message struct {
	ChunkStreamID uint32
	Timestamp     uint32 // milliseconds, as the sender's clock runs (it wraps at 2^32)
	Type          uint8
	StreamID      uint32
	Body          []byte
}

// DefaultChunkSize is the chunk size both directions start with.
const DefaultChunkSize = 128

// Limits bound what one connection's Reader holds.
type Limits struct {
	// MaxMessage is the largest message body accepted.
	MaxMessage int
	// MaxBuffered is the most bytes held in the buffers of all chunk streams (partial
	// messages and buffers kept for reuse).
	MaxBuffered int
	// MaxChunkStreams is the most chunk streams with state (nginx-rtmp's max_streams
	// defaults to 32; clients use five or six).
	MaxChunkStreams int
}

// DefaultLimits fit a publisher of media; servers lower MaxMessage until a publish is
// authorized.
var DefaultLimits = Limits{MaxMessage: 16 << 20, MaxBuffered: 24 << 20, MaxChunkStreams: 32}

// Errors of a connection that broke the protocol or a limit; each is wrapped with
// details.
var (
	ErrMessageTooLarge = errors.New("rtmp chunk: message larger than allowed")
	ErrBufferBudget    = errors.New("rtmp chunk: partial messages exceed the connection's buffer budget")
	ErrChunkStreams    = errors.New("rtmp chunk: too many chunk streams")
	ErrProtocol        = errors.New("rtmp chunk: protocol violation")
)

// stream is the header state of one chunk stream and its message in progress.
type stream struct {
	id       uint32
	seen     bool   // a header set the fields below
	ts       uint32 // timestamp of the current message
	delta    uint32 // timestamp field of the last header, added by a new-message format 3
	extended bool   // the last header's timestamp field was extended
	extField uint32 // that extended field, repeated by format 3 continuation chunks
	length   uint32
	typ      uint8
	msid     uint32
	active   bool   // a message is in progress
	buf      []byte // its bytes so far; kept for reuse between messages
}

// Reader reassembles messages. One goroutine uses it; a Message's Body stays valid only
// until the next Read.
type Reader struct {
	src       io.Reader
	br        *bufio.Reader // nil after Release, until the next Read
	bufSize   int           // the size of the next br
	resize    bool          // SetReadBuffer asked for a new br at the next message boundary
	limits    Limits
	chunkSize uint32
	streams   []*stream
	buffered  int // sum of cap(buf) over streams
	count     uint64
	window    uint32
	lastAck   uint64
	ack       func(uint32) error
	hdr       [16]byte // header bytes being read (a local would escape to the heap)
}

// NewReader reads chunks from r. ack, if not nil, is called with the bytes received so
// far (mod 2^32) each time another acknowledgement window has arrived.
func NewReader(r io.Reader, limits Limits, ack func(uint32) error) *Reader {
	return &Reader{src: r, bufSize: 4096, limits: limits, chunkSize: DefaultChunkSize, ack: ack}
}

// SetReadBuffer makes the reader read the connection through a buffer of n bytes (at
// least 16) from the next Read that finds nothing buffered on: a player sends a few
// small messages a minute, and the 4 KiB a publisher's reads want would be most of what
// an idle player's connection holds.
func (r *Reader) SetReadBuffer(n int) { r.bufSize, r.resize = n, true }

// Release lets go of the read buffer, and of the buffers chunk streams keep for reuse,
// when nothing read is left unparsed and no message is in progress; the next Read makes
// a buffer again. A player's connection calls it each time it goes back to waiting: it
// waits for a few small messages a minute, and holding buffers meanwhile would be a
// large part of what an idle player costs.
func (r *Reader) Release() {
	if r.Unread() > 0 {
		return
	}
	for _, s := range r.streams {
		if s.active {
			return
		}
	}
	r.br = nil
	r.releaseIdle(nil)
}

// SetLimits changes the limits for messages that start from now on.
func (r *Reader) SetLimits(l Limits) { r.limits = l }

// SetChunkSize applies the peer's Set Chunk Size.
func (r *Reader) SetChunkSize(n uint32) error {
	if n < 1 || n > 0x7fffffff {
		return fmt.Errorf("%w: chunk size %d", ErrProtocol, n)
	}
	r.chunkSize = n
	return nil
}

// SetWindowAckSize applies the peer's Window Acknowledgement Size (0: no acks).
func (r *Reader) SetWindowAckSize(n uint32) { r.window = n }

// Abort drops the partial message of chunk stream csid (Abort Message).
func (r *Reader) Abort(csid uint32) {
	if s := r.find(csid); s != nil {
		s.active, s.buf = false, s.buf[:0]
	}
}

// Count is the number of bytes consumed from the connection.
func (r *Reader) Count() uint64 { return r.count }

// Buffered is the number of bytes the chunk streams' buffers hold.
func (r *Reader) Buffered() int { return r.buffered }

// Unread is the number of bytes read from the connection and not parsed yet: a Read
// with none may block on the connection.
func (r *Reader) Unread() int {
	if r.br == nil {
		return 0
	}
	return r.br.Buffered()
}

// Read returns the next complete message.
func (r *Reader) Read() (Message, error) {
	if r.resize && r.Unread() == 0 {
		r.br, r.resize = nil, false // in makes one of the new size
	}
	for {
		s, err := r.header()
		if err != nil {
			return Message{}, err
		}
		if err := r.body(s); err != nil {
			return Message{}, err
		}
		if err := r.maybeAck(); err != nil {
			return Message{}, err
		}
		if len(s.buf) == int(s.length) {
			s.active = false
			return Message{ChunkStreamID: s.id, Timestamp: s.ts, Type: s.typ, StreamID: s.msid, Body: s.buf}, nil
		}
	}
}

func (r *Reader) find(csid uint32) *stream {
	for _, s := range r.streams {
		if s.id == csid {
			return s
		}
	}
	return nil
}

// in is the read buffer, made when the reader has none.
func (r *Reader) in() *bufio.Reader {
	if r.br == nil {
		r.br = bufio.NewReaderSize(r.src, r.bufSize)
	}
	return r.br
}

func (r *Reader) readFull(p []byte) error {
	n, err := io.ReadFull(r.in(), p)
	r.count += uint64(n)
	return err
}

func (r *Reader) u24(p []byte) uint32 { return uint32(p[0])<<16 | uint32(p[1])<<8 | uint32(p[2]) }

// header reads a chunk's basic and message headers and updates its chunk stream.
func (r *Reader) header() (*stream, error) {
	h := r.hdr[:]
	if err := r.readFull(h[:1]); err != nil {
		return nil, err
	}
	format := h[0] >> 6
	csid := uint32(h[0] & 0x3f)
	switch csid {
	case 0:
		if err := r.readFull(h[1:2]); err != nil {
			return nil, err
		}
		csid = 64 + uint32(h[1])
	case 1:
		if err := r.readFull(h[1:3]); err != nil {
			return nil, err
		}
		csid = 64 + uint32(h[1]) + uint32(h[2])<<8
	}
	s := r.find(csid)
	if s == nil {
		if len(r.streams) >= r.limits.MaxChunkStreams {
			return nil, fmt.Errorf("%w: more than %d", ErrChunkStreams, r.limits.MaxChunkStreams)
		}
		s = &stream{id: csid}
		r.streams = append(r.streams, s)
	}
	if format == 3 {
		return s, r.continuation(s)
	}
	if s.active {
		// A new header inside a message would restart it; nginx-rtmp and SRS refuse too.
		return nil, fmt.Errorf("%w: format %d header inside a partial message on chunk stream %d", ErrProtocol, format, csid)
	}
	if !s.seen && format == 2 {
		return nil, fmt.Errorf("%w: format 2 on new chunk stream %d", ErrProtocol, csid)
	}
	n := [3]int{11, 7, 3}[format]
	p := h[:n]
	if err := r.readFull(p); err != nil {
		return nil, err
	}
	field := r.u24(p)
	if format <= 1 {
		s.length, s.typ = r.u24(p[3:]), p[6]
	}
	if format == 0 {
		s.msid = binary.LittleEndian.Uint32(p[7:])
	}
	s.extended = field == 0xffffff
	if s.extended {
		if err := r.readFull(h[:4]); err != nil {
			return nil, err
		}
		field = binary.BigEndian.Uint32(h[:4])
		s.extField = field
	}
	s.delta = field
	if format == 0 {
		s.ts = field
	} else {
		// librtmp starts a fresh chunk stream with format 1 (pings): time from zero.
		s.ts += field
	}
	s.seen = true
	return s, r.start(s)
}

// continuation handles a format 3 chunk: the next part of the message in progress, or a
// new message with every header field of the previous one.
func (r *Reader) continuation(s *stream) error {
	if !s.seen {
		return fmt.Errorf("%w: format 3 on new chunk stream %d", ErrProtocol, s.id)
	}
	if s.active {
		if s.extended {
			// The extended field is repeated in continuation chunks by most senders
			// (FMS, ffmpeg, librtmp, peer) but not all: take it when it is there, as SRS
			// does.
			p, err := r.in().Peek(4)
			if err == nil && binary.BigEndian.Uint32(p) == s.extField {
				r.br.Discard(4)
				r.count += 4
			}
		}
		return nil
	}
	if s.extended {
		p := r.hdr[:4]
		if err := r.readFull(p); err != nil {
			return err
		}
		s.delta = binary.BigEndian.Uint32(p)
		s.extField = s.delta
	}
	s.ts += s.delta
	return r.start(s)
}

// start begins a message on s once its header is known.
func (r *Reader) start(s *stream) error {
	if int64(s.length) > int64(r.limits.MaxMessage) {
		return fmt.Errorf("%w: %d bytes of type %d, limit %d", ErrMessageTooLarge, s.length, s.typ, r.limits.MaxMessage)
	}
	s.active, s.buf = true, s.buf[:0]
	return nil
}

// body reads one chunk's payload into s's buffer. It reads what arrives, growing the
// buffer as it fills: a header announcing megabytes allocates nothing until they come.
func (r *Reader) body(s *stream) error {
	left := min(int(s.length)-len(s.buf), int(r.chunkSize))
	for left > 0 {
		if len(s.buf) == cap(s.buf) {
			if err := r.grow(s); err != nil {
				return err
			}
		}
		room := s.buf[len(s.buf):min(cap(s.buf), len(s.buf)+left)]
		n, err := r.in().Read(room)
		r.count += uint64(n)
		s.buf = s.buf[:len(s.buf)+n]
		left -= n
		if err != nil {
			return err
		}
	}
	return nil
}

// minGrow is the smallest buffer a chunk stream gets.
const minGrow = 512

// grow makes room in the full s.buf: it doubles the buffer (starting at minGrow, and
// never past the message's length), so a stream's buffer is at most twice what arrived
// on it plus minGrow, and a message costs a logarithmic number of copies.
func (r *Reader) grow(s *stream) error {
	size := min(int(s.length), max(2*cap(s.buf), minGrow))
	if r.buffered-cap(s.buf)+size > r.limits.MaxBuffered {
		r.releaseIdle(s)
	}
	if r.buffered-cap(s.buf)+size > r.limits.MaxBuffered {
		return fmt.Errorf("%w: %d bytes held, limit %d", ErrBufferBudget, r.buffered, r.limits.MaxBuffered)
	}
	buf := make([]byte, len(s.buf), size)
	copy(buf, s.buf)
	r.buffered += size - cap(s.buf)
	s.buf = buf
	return nil
}

// releaseIdle lets go of the buffers kept for reuse by streams other than s that have no
// message in progress (a Body returned last stays valid: it is only no longer reused).
func (r *Reader) releaseIdle(s *stream) {
	for _, o := range r.streams {
		if o != s && !o.active && o.buf != nil {
			r.buffered -= cap(o.buf)
			o.buf = nil
		}
	}
}

func (r *Reader) maybeAck() error {
	if r.window == 0 || r.ack == nil || r.count-r.lastAck < uint64(r.window) {
		return nil
	}
	r.lastAck = r.count
	return r.ack(uint32(r.count))
}
