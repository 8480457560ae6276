package netio

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// A Reader returns the bytes in order across many small reads, then io.EOF when the peer
// closes, and allocates nothing per read.
func TestReaderReadsInOrderThenEOF(t *testing.T) {
	server, client := tcpPair(t)
	r := NewReader(server)
	if _, ok := r.(*Reader); !ok {
		t.Fatalf("NewReader on a TCP connection gave %T", r)
	}
	want := pattern(300_000, 3)
	go func() {
		client.Write(want)
		client.Close()
	}()
	got, err := io.ReadAll(io.LimitReader(r, int64(len(want))))
	if err != nil || string(got) != string(want) {
		t.Fatalf("read %d bytes (%v), want %d in order", len(got), err, len(want))
	}
	if n, err := r.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("after close: %d, %v; want 0, io.EOF", n, err)
	}
}

func TestReaderHonoursReadDeadline(t *testing.T) {
	server, _ := tcpPair(t)
	r := NewReader(server)
	server.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err := r.Read(make([]byte, 10))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err %v, want a deadline error", err)
	}
	t.Logf("returned after %v", time.Since(start)) // it returned: the deadline was honoured
}

func TestReaderWakesOnClose(t *testing.T) {
	server, _ := tcpPair(t)
	r := NewReader(server)
	done := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 10))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	server.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("err %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a blocked Read did not return when the connection closed")
	}
}

func TestReaderZeroAllocs(t *testing.T) {
	server, client := tcpPair(t)
	r := NewReader(server)
	buf := make([]byte, 64)
	msg := []byte("0123456789")
	allocs := testing.AllocsPerRun(200, func() {
		client.Write(msg)
		if _, err := io.ReadFull(r, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per read", allocs)
	}
}

func TestNewReaderPassesThroughNonSockets(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if r := NewReader(a); r != a {
		t.Fatalf("NewReader(pipe) = %T, want the pipe itself", r)
	}
}

// WaitReadable returns once bytes arrive, consumes none of them, and returns at a hangup
// and at the read deadline too.
func TestWaitReadable(t *testing.T) {
	server, client := tcpPair(t)
	raw := RawConn(server)
	if raw == nil {
		t.Fatal("no RawConn for a TCP connection")
	}
	go client.Write([]byte("ab"))
	if err := WaitReadable(raw); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 2)
	if _, err := io.ReadFull(server, b); err != nil || string(b) != "ab" {
		t.Fatalf("after the wait read %q (%v), want the bytes whole", b, err)
	}
	server.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if err := WaitReadable(raw); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("at the deadline: %v", err)
	}
	server.SetReadDeadline(time.Time{})
	client.Close()
	if err := WaitReadable(raw); err != nil {
		t.Fatalf("at a hangup: %v (want nil: the read that follows sees EOF)", err)
	}
	if n, err := server.Read(b); n != 0 || err != io.EOF {
		t.Fatalf("after the hangup: %d, %v", n, err)
	}
}
