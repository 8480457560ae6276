package rtmp

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"peer/ingress/limit"
	"peer/media"
	"peer/media/flv"
	"peer/media/rtmp"
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
	pub, err := rtmp.DialPublish(ctx, addr, "live", "x?token=1", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	base := int64(1<<32 - 200)
	if _, err := pub.WriteTags([]*flv.Tag{flv.NewTag(flv.TypeVideo, base, avcSeq), flv.NewTag(flv.TypeVideo, base, keyframe)}); err != nil {
		t.Fatal(err)
	}
	play, err := rtmp.DialPlay(ctx, addr, "live", "x", 5*time.Second)
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

func TestClientSecondPublisherRefused(t *testing.T) {
	addr, _ := startServer(t)
	ctx := context.Background()
	first, err := rtmp.DialPublish(ctx, addr, "live", "busy", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	_, err = rtmp.DialPublish(ctx, addr, "live", "busy", 5*time.Second)
	if !errors.Is(err, rtmp.ErrRefused) {
		t.Fatalf("second publisher: %v", err)
	}
}
