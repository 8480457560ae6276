package chunk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

var small = Limits{MaxMessage: 64 << 10, MaxBuffered: 128 << 10, MaxChunkStreams: 8}

func readAll(t *testing.T, in []byte, l Limits, chunkSize uint32) []Message {
	t.Helper()
	r := NewReader(bytes.NewReader(in), l, nil)
	if err := r.SetChunkSize(chunkSize); err != nil {
		t.Fatal(err)
	}
	var out []Message
	for {
		m, err := r.Read()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("after %d messages: %v", len(out), err)
		}
		m.Body = bytes.Clone(m.Body)
		out = append(out, m)
	}
}

// TestRoundTrip writes messages with AppendMessage and reads them back: one- to
// three-byte basic headers, extended timestamps (repeated on continuation chunks) and
// bodies over several chunks.
func TestRoundTrip(t *testing.T) {
	msgs := []Message{
		{ChunkStreamID: 3, Timestamp: 0, Type: 20, StreamID: 0, Body: []byte("connect")},
		{ChunkStreamID: 6, Timestamp: 0x1000000, Type: 9, StreamID: 1, Body: bytes.Repeat([]byte{0xff, 0xff, 0xff, 0xff, 1}, 300)},
		{ChunkStreamID: 64, Timestamp: 40, Type: 8, StreamID: 1, Body: []byte{0xaf, 1}},
		{ChunkStreamID: 320, Timestamp: 0xffffff, Type: 9, StreamID: 1, Body: make([]byte, 1000)},
		{ChunkStreamID: 65599, Timestamp: 7, Type: 18, StreamID: 0x01020304, Body: nil},
	}
	for _, size := range []int{1, 128, 4096} {
		var in []byte
		for i := range msgs {
			in = AppendMessage(in, &msgs[i], size)
		}
		got := readAll(t, in, small, uint32(size))
		if len(got) != len(msgs) {
			t.Fatalf("chunk size %d: %d messages", size, len(got))
		}
		for i, m := range got {
			w := msgs[i]
			if m.ChunkStreamID != w.ChunkStreamID || m.Timestamp != w.Timestamp || m.Type != w.Type || m.StreamID != w.StreamID || !bytes.Equal(m.Body, w.Body) {
				t.Fatalf("chunk size %d, message %d: got %+v", size, i, m)
			}
		}
	}
}

// TestStreamIDLittleEndian: the message stream id goes on the wire little-endian.
func TestStreamIDLittleEndian(t *testing.T) {
	h := AppendHeader(nil, 5, 0, 0, 20, 1)
	if got := h[8:12]; !bytes.Equal(got, []byte{1, 0, 0, 0}) {
		t.Fatalf("stream id bytes %x", got)
	}
}

// TestCompressedHeaders reads format 1, 2 and 3 headers as ffmpeg writes audio: deltas
// accumulate, and a format 3 new message repeats the last delta.
func TestCompressedHeaders(t *testing.T) {
	in := []byte{0x04, 0, 0, 100, 0, 0, 2, 8, 1, 0, 0, 0, 0xaf, 1} // fmt 0, ts 100
	in = append(in, 0x44, 0, 0, 23, 0, 0, 3, 8, 0xaf, 1, 2)        // fmt 1, delta 23, len 3
	in = append(in, 0x84, 0, 0, 24, 0xaf, 1, 3)                    // fmt 2, delta 24
	in = append(in, 0xc4, 0xaf, 1, 4)                              // fmt 3: delta 24 again
	got := readAll(t, in, small, 128)
	want := []uint32{100, 123, 147, 171}
	if len(got) != len(want) {
		t.Fatalf("%d messages", len(got))
	}
	for i, m := range got {
		if m.Timestamp != want[i] || m.StreamID != 1 || m.Type != 8 {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
}

// TestExtendedContinuationOptional: a sender that does not repeat the extended
// timestamp on continuation chunks is read as well as one that does.
func TestExtendedContinuationOptional(t *testing.T) {
	body := []byte{1, 2, 3, 4, 5, 6}
	in := []byte{0x06, 0xff, 0xff, 0xff, 0, 0, 6, 9, 1, 0, 0, 0, 0x01, 0, 0, 0}
	in = append(in, body[:3]...)
	in = append(in, 0xc6) // no extended field repeated
	in = append(in, body[3:]...)
	got := readAll(t, in, small, 3)
	if len(got) != 1 || got[0].Timestamp != 0x01000000 || !bytes.Equal(got[0].Body, body) {
		t.Fatalf("%+v", got)
	}
}

func TestAbort(t *testing.T) {
	in := []byte{0x06, 0, 0, 0, 0, 0, 8, 9, 1, 0, 0, 0, 1, 2, 3, 4}
	r := NewReader(bytes.NewReader(append(in, AppendMessage(nil, &Message{ChunkStreamID: 6, Type: 9, Body: []byte("ok")}, 128)...)), small, nil)
	r.SetChunkSize(4)
	// The first chunk leaves chunk stream 6 partial; a second header on it is refused
	// unless the message was aborted.
	if _, err := r.header(); err != nil {
		t.Fatal(err)
	}
	if err := r.body(r.find(6)); err != nil {
		t.Fatal(err)
	}
	r.Abort(6)
	r.SetChunkSize(128)
	m, err := r.Read()
	if err != nil || string(m.Body) != "ok" {
		t.Fatalf("%v %q", err, m.Body)
	}
}

func TestAck(t *testing.T) {
	var in []byte
	for range 10 {
		in = AppendMessage(in, &Message{ChunkStreamID: 6, Type: 9, StreamID: 1, Body: make([]byte, 100)}, 128)
	}
	var acks []uint32
	r := NewReader(bytes.NewReader(in), small, func(n uint32) error { acks = append(acks, n); return nil })
	r.SetWindowAckSize(250)
	for {
		if _, err := r.Read(); err != nil {
			break
		}
	}
	if len(acks) != 3 || acks[0] < 250 || acks[len(acks)-1] > uint32(len(in)) {
		t.Fatalf("acks %v for %d bytes", acks, len(in))
	}
}

// TestRefusals: each limit and protocol violation ends the read with its error.
func TestRefusals(t *testing.T) {
	announce := func(csid byte, length int) []byte {
		return AppendHeader(nil, uint32(csid), 0, length, 20, 0)
	}
	manyStreams := []byte{}
	for i := range small.MaxChunkStreams + 1 {
		manyStreams = append(manyStreams, announce(byte(3+i), 0)...)
	}
	// Three 60 KB messages in 30 KB chunks, interleaved: with all three halfway
	// through, the second half of the first exceeds a 100 KB budget.
	var budget []byte
	for _, h := range [][]byte{announce(3, 60000), announce(4, 60000), announce(5, 60000), {0xc3}} {
		budget = append(append(budget, h...), make([]byte, 30000)...)
	}
	cases := map[string]struct {
		in    []byte
		limit Limits
		size  uint32
		want  error
	}{
		"message over the limit":       {announce(3, 64<<10+1), small, 128, ErrMessageTooLarge},
		"too many chunk streams":       {manyStreams, small, 128, ErrChunkStreams},
		"buffer budget":                {budget, Limits{MaxMessage: 64 << 10, MaxBuffered: 100 << 10, MaxChunkStreams: 8}, 30000, ErrBufferBudget},
		"format 3 on a new stream":     {[]byte{0xc3, 1}, small, 128, ErrProtocol},
		"format 2 on a new stream":     {[]byte{0x83, 0, 0, 1}, small, 128, ErrProtocol},
		"format 0 inside a message":    {append(append(announce(3, 200), make([]byte, 128)...), announce(3, 1)...), small, 128, ErrProtocol},
		"truncated header":             {[]byte{0x03, 0, 0}, small, 128, io.ErrUnexpectedEOF},
		"truncated extended timestamp": {[]byte{0x03, 0xff, 0xff, 0xff, 0, 0, 1, 20, 0, 0, 0, 0, 1}, small, 128, io.ErrUnexpectedEOF},
	}
	for name, c := range cases {
		r := NewReader(bytes.NewReader(c.in), c.limit, nil)
		r.SetChunkSize(c.size)
		var err error
		for err == nil {
			_, err = r.Read()
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

// TestAnnouncedSizeNotAllocated is the memory amplification gortmplib had: a 10 MB
// chunk size and a 10 MB message announced, then a few bytes; only what arrived is held.
func TestAnnouncedSizeNotAllocated(t *testing.T) {
	in := AppendHeader(nil, 6, 0, 10<<20, 9, 1)
	in = append(in, make([]byte, 1000)...)
	r := NewReader(bytes.NewReader(in), DefaultLimits, nil)
	r.SetChunkSize(10 << 20)
	if _, err := r.Read(); err != io.ErrUnexpectedEOF && err != io.EOF {
		t.Fatalf("read: %v", err)
	}
	if r.Buffered() > 2*1000+minGrow {
		t.Fatalf("%d bytes buffered for 1000 received", r.Buffered())
	}
}

// TestReadReusesBuffers: steady media on a chunk stream allocates nothing per message.
func TestReadReusesBuffers(t *testing.T) {
	var one []byte
	one = AppendMessage(one, &Message{ChunkStreamID: 6, Type: 9, StreamID: 1, Body: make([]byte, 5000)}, 4096)
	src := &repeat{b: one}
	r := NewReader(src, DefaultLimits, nil)
	r.SetChunkSize(4096)
	r.Read()
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := r.Read(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per message", allocs)
	}
}

// TestReleaseHoldsNothing: a released reader holds no read buffer and no chunk stream
// buffer, and reads on as before; a message in progress keeps both.
func TestReleaseHoldsNothing(t *testing.T) {
	var in []byte
	var ends []int
	for i := range 3 {
		in = AppendMessage(in, &Message{ChunkStreamID: 3, Type: 20, Timestamp: uint32(i), Body: bytes.Repeat([]byte{byte(i)}, 300)}, 128)
		ends = append(ends, len(in))
	}
	src := &gate{b: in, limit: ends[1]}
	r := NewReader(src, small, nil)
	r.SetReadBuffer(64)
	for i := range 2 {
		m, err := r.Read()
		if err != nil || m.Timestamp != uint32(i) || len(m.Body) != 300 {
			t.Fatalf("message %d: %+v, %v", i, m, err)
		}
	}
	if r.Unread() != 0 {
		t.Fatalf("%d bytes unread at the end of what came", r.Unread())
	}
	r.Release()
	if r.br != nil || r.Buffered() != 0 {
		t.Fatalf("released: read buffer %v, %d bytes in chunk streams", r.br != nil, r.Buffered())
	}
	src.limit = ends[2] - 45 // the third message's last chunk (1+44 bytes) is yet to come
	if _, err := r.Read(); err != io.EOF {
		t.Fatalf("read of a partial message: %v", err)
	}
	held := r.Buffered()
	r.Release()
	if r.Buffered() != held || held == 0 || r.br == nil {
		t.Fatalf("released a message in progress: %d bytes held, %d before", r.Buffered(), held)
	}
	src.limit = ends[2]
	m, err := r.Read()
	if err != nil || m.Timestamp != 2 || !bytes.Equal(m.Body, bytes.Repeat([]byte{2}, 300)) {
		t.Fatalf("third message after the rest came: %+v, %v", m, err)
	}
}

// gate reads b up to limit, and then reports EOF.
type gate struct {
	b          []byte
	off, limit int
}

func (g *gate) Read(p []byte) (int, error) {
	if g.off >= g.limit {
		return 0, io.EOF
	}
	n := copy(p, g.b[g.off:g.limit])
	g.off += n
	return n, nil
}

// TestLargeMessageSmallChunks: a message of many small chunks grows its buffer by
// doubling, not by a chunk at a time.
func TestLargeMessageSmallChunks(t *testing.T) {
	in := AppendMessage(nil, &Message{ChunkStreamID: 6, Type: 9, StreamID: 1, Body: make([]byte, 4<<20)}, 128)
	allocs := testing.AllocsPerRun(3, func() {
		r := NewReader(bytes.NewReader(in), DefaultLimits, nil)
		if _, err := r.Read(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 20 {
		t.Fatalf("%v allocations for a 4 MB message in 128-byte chunks", allocs)
	}
}

// repeat reads b over and over.
type repeat struct {
	b   []byte
	off int
}

func (r *repeat) Read(p []byte) (int, error) {
	n := copy(p, r.b[r.off:])
	r.off = (r.off + n) % len(r.b)
	return n, nil
}

func BenchmarkRead(b *testing.B) {
	var in []byte
	in = AppendMessage(in, &Message{ChunkStreamID: 6, Type: 9, StreamID: 1, Body: make([]byte, 10000)}, 60000)
	in = AppendMessage(in, &Message{ChunkStreamID: 4, Type: 8, StreamID: 1, Body: make([]byte, 300)}, 60000)
	r := NewReader(&repeat{b: in}, DefaultLimits, nil)
	r.SetChunkSize(60000)
	b.SetBytes(int64(len(in)) / 2)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Read(); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzReader reads arbitrary chunk streams under small limits, applying Set Chunk Size
// and Abort as a session does. The memory held must stay within twice the bytes
// consumed (plus a minimal buffer per chunk stream), and no message may exceed the
// limit. A message with a timestamp of an odd second releases the reader's buffers
// when nothing is left unread, as a player's session does. The corpus holds a captured ffmpeg publish session (connect to the first
// media) and peer's replies to it.
func FuzzReader(f *testing.F) {
	f.Add(AppendMessage(nil, &Message{ChunkStreamID: 6, Timestamp: 0x1234567, Type: 9, StreamID: 1, Body: make([]byte, 300)}, 128))
	f.Add(append(AppendMessage(nil, &Message{ChunkStreamID: 2, Type: 1, Body: binary.BigEndian.AppendUint32(nil, 1<<20)}, 128),
		AppendHeader(nil, 6, 0, 10<<20, 9, 1)...))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in), small, func(uint32) error { return nil })
		r.SetWindowAckSize(1000)
		bound := func() {
			if r.Buffered() > 2*int(r.Count())+minGrow*small.MaxChunkStreams {
				t.Fatalf("%d bytes buffered after %d consumed", r.Buffered(), r.Count())
			}
		}
		for {
			m, err := r.Read()
			bound()
			if err != nil {
				return
			}
			if len(m.Body) > small.MaxMessage {
				t.Fatalf("message of %d bytes", len(m.Body))
			}
			if len(m.Body) >= 4 {
				switch m.Type {
				case 1:
					if r.SetChunkSize(binary.BigEndian.Uint32(m.Body)&0x7fffffff) != nil {
						return
					}
				case 2:
					r.Abort(binary.BigEndian.Uint32(m.Body))
				}
			}
			if m.Timestamp/1000%2 == 1 && r.Unread() == 0 {
				r.Release()
			}
		}
	})
}
