package node

import (
	"bufio"
	"crypto/rand"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"peer/chaos/avtest"
)

// rtmpHandshake performs a plain client handshake (C0/C1, S0/S1/S2, C2) on c.
func rtmpHandshake(t *testing.T, c net.Conn) {
	t.Helper()
	c1 := make([]byte, 1537)
	c1[0] = 3
	if _, err := c.Write(c1); err != nil {
		t.Fatal(err)
	}
	s := make([]byte, 1+1536*2)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, s); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(s[1 : 1+1536]); err != nil {
		t.Fatal(err)
	}
}

// expectClosed waits for the server to close c.
func expectClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("%s: connection not closed by the server: %v", what, err)
	}
}

// TestBadInput sends garbage of every kind while a stream is live; each bad client is
// closed with a logged reason and the stream keeps playing.
func TestBadInput(t *testing.T) {
	avtest.RequireTools(t)
	n := startNode(t, nil)
	publish(t, n.rtmpURL("live/good"), avtest.PublishOptions{})
	waitPublishing(t, n, "live/good")

	dial := func(addr string) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	garbage := make([]byte, 4096)
	rand.Read(garbage)

	t.Run("HandshakeVersion", func(t *testing.T) {
		c := dial(n.RTMPAddr())
		c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
		c.Write(garbage)
		expectClosed(t, c, "bad handshake")
		eventually(t, 5*time.Second, "handshake refusal logged", func() bool { return n.logged("session refused", "handshake") })
	})
	t.Run("GarbageChunks", func(t *testing.T) {
		c := dial(n.RTMPAddr())
		rtmpHandshake(t, c)
		// Chunk stream 3, type 0, claims a 16 MiB+ body: over the library's limit.
		c.Write([]byte{0x03, 0, 0, 0, 0xff, 0xff, 0xff, 0x14, 0, 0, 0, 0})
		c.Write(garbage)
		expectClosed(t, c, "garbage chunks")
	})
	t.Run("MalformedCommand", func(t *testing.T) {
		c := dial(n.RTMPAddr())
		rtmpHandshake(t, c)
		body := []byte{0x02, 0x00, 0x40, 'c', 'o'} // AMF0 string claiming 64 bytes, 2 present
		c.Write(append([]byte{0x03, 0, 0, 0, 0, 0, byte(len(body)), 0x14, 0, 0, 0, 0}, body...))
		expectClosed(t, c, "malformed command")
		eventually(t, 5*time.Second, "malformed command logged", func() bool { return n.logged("session refused", "AMF0") })
	})
	t.Run("BadStreamNames", func(t *testing.T) {
		for _, name := range []string{"..", strings.Repeat("x", 300)} {
			p := publish(t, n.rtmpURL("live/"+name), avtest.PublishOptions{Duration: 3 * time.Second})
			select {
			case <-p.Done():
			case <-time.After(15 * time.Second):
				t.Fatalf("publish to %.20q was not refused", name)
			}
		}
		eventually(t, 5*time.Second, "bad name logged", func() bool { return n.logged("bad stream name") })
		resp, _ := httpGet(t, n.httpURL("/live/..%2f..%2fetc.flv"))
		if resp.StatusCode == 200 {
			t.Fatal("bad HTTP stream name served")
		}
	})
	t.Run("HTTPGarbage", func(t *testing.T) {
		c := dial(n.HTTPAddr())
		c.Write(garbage)
		c.Write([]byte("\r\n\r\n"))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		if line != "" && !strings.Contains(line, "400") {
			t.Fatalf("garbage got %q", line)
		}
		expectClosed(t, c, "http garbage")
		eventually(t, 5*time.Second, "http garbage logged", func() bool { return n.logged("without a valid request") })
	})
	avtest.CheckPlayable(t, n.rtmpURL("live/good"), 0)
	avtest.CheckPlayable(t, n.httpURL("/live/good.flv"), 0)
}
