package netio

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// pattern returns n bytes that differ at every offset modulo 251, so a lost, repeated or
// reordered piece shows.
func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((i + seed) % 251)
	}
	return b
}

// A client that does not read fills the socket: TryWrite must return at once with the
// rest pending, and the blocking Write must then send pending and new bytes in order.
func TestTryWriteKeepsWhatTheSocketRefused(t *testing.T) {
	server, client := tcpPair(t)
	w := New(server, 5*time.Second)
	var want bytes.Buffer
	complete := true
	start := time.Now()
	for i := 0; complete && i < 10000; i++ {
		a, b := pattern(3000, i), pattern(1500, i+7)
		want.Write(a)
		want.Write(b)
		var err error
		if _, complete, err = w.TryWrite([][]byte{a, b}); err != nil {
			t.Fatal(err)
		}
	}
	if complete || !w.Pending() {
		t.Fatal("the socket never filled up")
	}
	t.Logf("nonblocking writes until the socket filled: %v", time.Since(start)) // a blocking one would hang
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(client)
		got <- b
	}()
	tail := pattern(100, 3)
	want.Write(tail)
	if _, err := w.Write([][]byte{tail}); err != nil {
		t.Fatal(err)
	}
	if w.Pending() || w.store != nil || w.join != nil {
		t.Fatalf("after a blocking write: pending %v, %d vectors kept", w.Pending(), cap(w.store)+cap(w.join))
	}
	server.Close()
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("received %d bytes, want %d in order", len(b), want.Len())
	}
}

// Vectors' scratch comes back empty, pointing to nothing a write used.
func TestPutVectorsForgets(t *testing.T) {
	v := Vectors()
	*v = append(*v, []byte("a"), []byte("b"))
	backing := (*v)[:2]
	PutVectors(v)
	if len(*v) != 0 || backing[0] != nil || backing[1] != nil {
		t.Fatalf("scratch after PutVectors: %d vectors, old entries %q", len(*v), backing)
	}
}

// The write deadline the blocking path keeps must never expire under a player the
// nonblocking path serves alone for longer than the timeout.
func TestTryWriteOutlivesTheWriteTimeout(t *testing.T) {
	server, client := tcpPair(t)
	go io.Copy(io.Discard, client)
	w := New(server, 100*time.Millisecond)
	if _, err := w.Write([][]byte{[]byte("head")}); err != nil {
		t.Fatal(err)
	}
	for range 30 {
		time.Sleep(10 * time.Millisecond)
		if _, complete, err := w.TryWrite([][]byte{pattern(100, 0)}); err != nil || !complete {
			t.Fatalf("TryWrite: complete %v, err %v", complete, err)
		}
	}
}

// A connection that is not a socket takes nothing without blocking; the blocking write
// delivers everything.
func TestNotASocket(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	w := New(a, time.Second)
	if n, complete, err := w.TryWrite([][]byte{[]byte("ab"), []byte("cd")}); n != 0 || complete || err != nil {
		t.Fatalf("TryWrite on a pipe = %d, %v, %v", n, complete, err)
	}
	go func() {
		w.Write([][]byte{[]byte("ef")})
		a.Close()
	}()
	if got, _ := io.ReadAll(b); string(got) != "abcdef" {
		t.Fatalf("got %q", got)
	}
}

// The fan-out calls TryWrite for every player and frame: it must not allocate.
func TestTryWriteDoesNotAllocate(t *testing.T) {
	server, client := tcpPair(t)
	go io.Copy(io.Discard, client)
	w := New(server, time.Second)
	bufs := [][]byte{pattern(100, 0), pattern(50, 1)}
	w.TryWrite(bufs) // first use sizes the scratch
	if a := testing.AllocsPerRun(100, func() { w.TryWrite(bufs) }); a != 0 {
		t.Fatalf("%v allocations per TryWrite", a)
	}
}
