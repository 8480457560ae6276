package web

import (
	"net"
	"testing"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"peer/ingress/limit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A player's media must reach the TCP connection itself: through the tracking wrapper,
// net.Buffers degrades to one write per tag instead of one writev per batch (3x the
// syscalls an HTTP-FLV player costs).
func TestMediaWriterIsTheTCPConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl := &trackedListener{Listener: ln, pool: limit.NewIdlePool("test", 10, zap.NewNop())}
	defer tl.Close()
	dialed := make(chan net.Conn, 1)
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Error(err)
		}
		dialed <- c
	}()
	c, err := tl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if cc := <-dialed; cc != nil {
		defer cc.Close()
	}
	if _, ok := mediaWriter(c).(*net.TCPConn); !ok {
		t.Fatalf("mediaWriter(%T) = %T, want *net.TCPConn", c, mediaWriter(c))
	}
}
