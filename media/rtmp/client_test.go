package rtmp

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"peer/media"
	"peer/media/flv"
	"peer/media/ingest"
	"peer/media/rtmp/chunk"
	"peer/media/rtmp/handshake"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The client's round trips with the RTMP server are ingress/rtmp's tests; here the far
// end is serveOne.

var (
	avcSeq   = []byte{0x17, 0, 0, 0, 0, 1, 0x42, 0, 0x1e, 0xff, 0xe0, 0}
	keyframe = []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65}
)

// serveOne is the far end of one client connection, as a server would be: it answers
// connect, createStream and the publish or play, then hands the connection to stream
// and closes it when stream returns.
func serveOne(t *testing.T, stream func(*Wire)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		if err := handshake.Server(conn); err != nil {
			t.Error(err)
			return
		}
		var w Wire
		w.Init(conn, 5*time.Second, chunk.DefaultLimits, func(n uint32) error { return w.Write(Ack(n)) })
		for {
			msg, err := w.ChunkReader().Read()
			if err != nil {
				t.Error(err)
				return
			}
			if handled, _ := w.Control(&msg, func(m *chunk.Message) error { return w.Write(m) }); handled || msg.Type != TypeCommandAMF0 {
				continue
			}
			cmd, err := DecodeCommand(msg.Type, msg.Body)
			if err != nil {
				t.Error(err)
				return
			}
			var reply *chunk.Message
			switch cmd.Name {
			case "connect", "createStream":
				reply, err = EncodeCommand(CSIDCommand, 0, "_result", cmd.TxID, nil, float64(MediaStreamID))
			case "publish":
				reply, err = OnStatus("status", "NetStream.Publish.Start", "")
			case "play":
				reply, err = OnStatus("status", "NetStream.Play.Start", "")
			}
			if err == nil && reply != nil {
				err = w.Write(reply)
			}
			if err != nil {
				t.Error(err)
				return
			}
			if cmd.Name == "publish" || cmd.Name == "play" {
				stream(&w)
				return
			}
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// TestReadTag reads a played stream through the RTMP adapter: media messages come out
// as tags with their type, 32-bit time and body; commands and control do not.
func TestReadTag(t *testing.T) {
	script := []byte{2, 0, 10, 'o', 'n', 'M', 'e', 't', 'a', 'D', 'a', 't', 'a'}
	sent := []*flv.Tag{flv.NewTag(flv.TypeScript, 0, script), flv.NewTag(flv.TypeVideo, 1<<32+5, avcSeq), flv.NewTag(flv.TypeVideo, 1<<32+40, keyframe)}
	addr := serveOne(t, func(w *Wire) {
		ping := UserControl(userPingRequest, 7)
		if err := w.Write(ping); err != nil {
			t.Error(err)
		}
		if _, err := w.WriteTags(sent); err != nil {
			t.Error(err)
		}
		w.ChunkReader().Read() // until the client goes
	})
	c, err := DialPlay(context.Background(), addr, "live", "x", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var r ingest.Reader = c
	for _, want := range sent {
		got, err := r.ReadTag()
		if err != nil {
			t.Fatal(err)
		}
		if got.Type != want.Type || got.Time != uint32(want.Time) || !bytes.Equal(got.Data, want.Data()) {
			t.Fatalf("read %d@%d %x, want %d@%d %x", got.Type, got.Time, got.Data, want.Type, uint32(want.Time), want.Data())
		}
	}
}

// TestMediaTag is the adapter's message classes: AMF3 data loses its format byte.
func TestMediaTag(t *testing.T) {
	for _, c := range []struct {
		msg  chunk.Message
		want ingest.Tag
		ok   bool
	}{
		{chunk.Message{Type: flv.TypeAudio, Timestamp: 3, Body: []byte{0xaf, 1}}, ingest.Tag{Type: flv.TypeAudio, Time: 3, Data: []byte{0xaf, 1}}, true},
		{chunk.Message{Type: TypeDataAMF3, Timestamp: 4, Body: []byte{0, 2, 0, 1, 'x'}}, ingest.Tag{Type: flv.TypeScript, Time: 4, Data: []byte{2, 0, 1, 'x'}}, true},
		{chunk.Message{Type: TypeDataAMF3}, ingest.Tag{}, false},
		{chunk.Message{Type: TypeCommandAMF0, Body: []byte{2}}, ingest.Tag{}, false},
		{chunk.Message{Type: TypeSetChunkSize, Body: []byte{0, 0, 1, 0}}, ingest.Tag{}, false},
	} {
		got, ok := MediaTag(&c.msg)
		if ok != c.ok || got.Type != c.want.Type || got.Time != c.want.Time || !bytes.Equal(got.Data, c.want.Data) {
			t.Errorf("type %d: %+v %v, want %+v %v", c.msg.Type, got, ok, c.want, c.ok)
		}
	}
}

// countingSink is a publishing Client seen as a media.Sink, counting how its writes
// ended.
type countingSink struct {
	*Client
	mu      sync.Mutex
	results map[media.SinkResult]int
}

func (s *countingSink) TryWrite(tags []*flv.Tag) (int, media.SinkResult, error) {
	n, res, err := s.Client.TryWrite(tags)
	s.mu.Lock()
	s.results[res]++
	s.mu.Unlock()
	return n, res, err
}

// TestClientAsSink feeds a publishing client from a stream's fan-out, as cluster links
// are fed: with a small socket buffer every large tag leaves a rest pending, which the
// link's goroutine must send before anything else. The far end must get every tag whole
// and in order.
func TestClientAsSink(t *testing.T) {
	const frames, size = 20, 64 << 10
	type got struct {
		index, size int
		err         error
	}
	recv := make(chan got, frames)
	addr := serveOne(t, func(w *Wire) {
		for seen := 0; seen < frames; {
			msg, err := w.ChunkReader().Read()
			if err != nil {
				recv <- got{err: err}
				return
			}
			if msg.Type == flv.TypeVideo && len(msg.Body) == size {
				recv <- got{index: int(binary.BigEndian.Uint32(msg.Body[5:])), size: len(msg.Body)}
				seen++
			}
		}
	})
	ctx := context.Background()
	c, err := DialPublish(ctx, addr, "live", "sink", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.conn.(*net.TCPConn).SetWriteBuffer(8 << 10); err != nil {
		t.Fatal(err)
	}

	src := media.NewHub(media.DefaultConfig(), zap.NewNop())
	pub, err := src.Publish("live", "sink", "test", media.Origin)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	player, err := src.Play("live", "sink", media.PlayOptions{Kind: "link-forward", Link: true})
	if err != nil {
		t.Fatal(err)
	}
	defer player.Close()
	sink := &countingSink{Client: c, results: map[media.SinkResult]int{}}
	player.SetSink(sink)
	lctx, stop := context.WithCancel(ctx)
	linkDone := make(chan error, 1)
	go func() { // the link's goroutine, as route.pump runs it
		var batch []*flv.Tag
		for {
			var err error
			if batch, err = player.Next(lctx, batch[:0]); err != nil {
				linkDone <- err
				return
			}
			n, err := c.WriteTags(batch)
			player.Sent(int(n))
			if err != nil {
				linkDone <- err
				return
			}
		}
	}()
	defer func() { stop(); <-linkDone }()

	pub.WriteAt(flv.TypeVideo, 0, avcSeq)
	for i := range frames {
		body := make([]byte, size)
		copy(body, keyframe[:5])
		binary.BigEndian.PutUint32(body[5:], uint32(i))
		for j := 9; j < size; j++ {
			body[j] = byte(i + j)
		}
		pub.WriteAt(flv.TypeVideo, int64(i)*40, body)
	}
	for i := range frames {
		select {
		case g := <-recv:
			if g.err != nil {
				t.Fatalf("player after %d frames: %v", i, g.err)
			}
			if g.index != i {
				t.Fatalf("frame %d arrived as number %d", i, g.index)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d frames arrived", i, frames)
		}
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.results[media.SinkPending] == 0 {
		t.Fatalf("no write was left pending (results %v): the test did not exercise the handoff", sink.results)
	}
	// The writer counts a write once it returns, which may be after the far end read it.
	for deadline := time.Now().Add(10 * time.Second); player.BytesOut() < frames*size; {
		if time.Now().After(deadline) {
			t.Fatalf("link counted %d bytes out, want at least %d", player.BytesOut(), frames*size)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkAppendChunks is the per-player cost of framing one 10 KB video message for
// RTMP: the headers are the tag's own, shared; the payload is referenced, not copied.
func BenchmarkAppendChunks(b *testing.B) {
	tag := flv.NewTag(flv.TypeVideo, 1<<25, make([]byte, 10000))
	var iov [][]byte
	b.ReportAllocs()
	for b.Loop() {
		iov = appendChunks(iov[:0], tag)
	}
}

// TestChunksReadBack: messages framed from shared chunk headers (of one chunk or
// several, with and without extended timestamps) read back whole, and a tag is framed
// once whoever asks.
func TestChunksReadBack(t *testing.T) {
	var tags []*flv.Tag
	for _, size := range []int{0, 1, OutChunkSize, OutChunkSize + 1, 3*OutChunkSize + 7} {
		for _, ms := range []int64{40, 0xffffff, 1 << 33} {
			body := make([]byte, size)
			for i := range body {
				body[i] = byte(i * 7)
			}
			tags = append(tags, flv.NewTag(flv.TypeVideo, ms, body), flv.NewTag(flv.TypeAudio, ms+1, body[:min(size, 300)]))
		}
	}
	var wire []byte
	for _, tag := range tags {
		iov := appendChunks(nil, tag)
		if again := appendChunks(nil, tag); &again[0][0] != &iov[0][0] {
			t.Fatal("a tag's chunk headers were made twice")
		}
		for _, v := range iov {
			wire = append(wire, v...)
		}
	}
	r := chunk.NewReader(bytes.NewReader(wire), chunk.DefaultLimits, nil)
	r.SetChunkSize(OutChunkSize)
	for i, tag := range tags {
		m, err := r.Read()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if m.Type != tag.Type || m.Timestamp != uint32(tag.Time) || m.StreamID != MediaStreamID || !bytes.Equal(m.Body, tag.Data()) {
			t.Fatalf("message %d (%d bytes at %d ms): type %d, %d ms, stream %d, %d bytes", i, tag.Size(), tag.Time, m.Type, m.Timestamp, m.StreamID, len(m.Body))
		}
	}
}
