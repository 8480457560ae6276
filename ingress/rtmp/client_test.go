package rtmp

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"peer/ingress/limit"
	"peer/media"
	"peer/media/flv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func startServer(t *testing.T) (string, *media.Hub) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hub := media.NewHub(media.DefaultConfig(), zap.NewNop())
	srv := &Server{Hub: hub, Limit: limit.New(10), Log: zap.NewNop()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String(), hub
}

var (
	avcSeq   = []byte{0x17, 0, 0, 0, 0, 1, 0x42, 0, 0x1e, 0xff, 0xe0, 0}
	keyframe = []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65}
	interFr  = []byte{0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41}
)

// TestClientPublishPlay round-trips tags through our server with our client, including
// timestamps past 2^24 ms (extended timestamps) and across the 2^32 ms wrap.
func TestClientPublishPlay(t *testing.T) {
	addr, _ := startServer(t)
	ctx := context.Background()
	pub, err := DialPublish(ctx, addr, "live", "x?token=1", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	base := int64(1<<32 - 200)
	if _, err := pub.WriteTags([]*flv.Tag{flv.NewTag(flv.TypeVideo, base, avcSeq), flv.NewTag(flv.TypeVideo, base, keyframe)}); err != nil {
		t.Fatal(err)
	}
	play, err := DialPlay(ctx, addr, "live", "x", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer play.Close()
	big := make([]byte, 20000) // spans several chunks
	copy(big, interFr)
	for i := int64(1); i <= 10; i++ {
		if _, err := pub.WriteTags([]*flv.Tag{flv.NewTag(flv.TypeVideo, base+i*40, big)}); err != nil {
			t.Fatal(err)
		}
	}
	var clock flv.Unwrapper
	var got []int64
	for len(got) < 12 {
		msg, err := play.ReadMedia()
		if err != nil {
			t.Fatal(err)
		}
		if msg.Type != flv.TypeVideo {
			continue
		}
		got = append(got, clock.Extend(msg.Timestamp))
	}
	for i := 1; i < len(got); i++ {
		if got[i] < got[i-1] {
			t.Fatalf("timestamps went back: %v", got)
		}
	}
	if got[len(got)-1] != base+400 {
		t.Fatalf("last timestamp %d, want %d (%v)", got[len(got)-1], base+400, got)
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
// link's goroutine must send before anything else. The server must get every tag whole
// and in order.
func TestClientAsSink(t *testing.T) {
	addr, _ := startServer(t)
	ctx := context.Background()
	c, err := DialPublish(ctx, addr, "live", "sink", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.conn.(*net.TCPConn).SetWriteBuffer(8 << 10); err != nil {
		t.Fatal(err)
	}
	play, err := DialPlay(ctx, addr, "live", "sink", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer play.Close()

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

	const frames, size = 20, 64 << 10
	type got struct {
		index, size int
		err         error
	}
	recv := make(chan got, frames)
	go func() {
		for seen := 0; seen < frames; {
			msg, err := play.ReadMedia()
			if err != nil {
				recv <- got{err: err}
				return
			}
			if msg.Type == flv.TypeVideo && len(msg.Body) == size {
				recv <- got{index: int(binary.BigEndian.Uint32(msg.Body[5:])), size: len(msg.Body)}
				seen++
			}
		}
	}()
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
	if player.BytesOut() < frames*size {
		t.Fatalf("link counted %d bytes out, want at least %d", player.BytesOut(), frames*size)
	}
}

func TestClientSecondPublisherRefused(t *testing.T) {
	addr, _ := startServer(t)
	ctx := context.Background()
	first, err := DialPublish(ctx, addr, "live", "busy", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	_, err = DialPublish(ctx, addr, "live", "busy", 5*time.Second)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("second publisher: %v", err)
	}
}

// BenchmarkAppendChunks is the per-player cost of framing one 10 KB video message for
// RTMP: headers only, the payload is referenced, not copied.
func BenchmarkAppendChunks(b *testing.B) {
	tag := flv.NewTag(flv.TypeVideo, 1<<25, make([]byte, 10000))
	var iov [][]byte
	var scratch []byte
	b.ReportAllocs()
	for b.Loop() {
		iov, scratch = appendChunks(iov[:0], scratch[:0], tag, outChunkSize)
	}
}
