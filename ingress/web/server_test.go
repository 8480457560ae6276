package web

import (
	"net"
	"testing"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"peer/ingress/limit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A player's media must reach the TCP connection itself: through the limit wrapper,
// net.Buffers degrades to one write per tag instead of one writev per batch (3x the
// syscalls an HTTP-FLV player costs).
func TestMediaWriterIsTheTCPConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := limit.New(10)
	ll := &limitedListener{Listener: ln, limit: lim, log: zap.NewNop()}
	defer ll.Close()
	dialed := make(chan net.Conn, 1)
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Error(err)
		}
		dialed <- c
	}()
	c, err := ll.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if cc := <-dialed; cc != nil {
		defer cc.Close()
	}
	if _, ok := mediaWriter(c).(*net.TCPConn); !ok {
		t.Fatalf("mediaWriter(%T) = %T, want *net.TCPConn", c, mediaWriter(c))
	}
	if lim.Active() != 1 {
		t.Fatalf("active = %d, want 1", lim.Active())
	}
	c.Close()
	if lim.Active() != 0 {
		t.Fatalf("closing the accepted connection left %d slots taken", lim.Active())
	}
}
