package attack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"peer/media/amf0"
	"peer/media/rtmp/chunk"
	"peer/media/rtmp/handshake"
)

// rtmpRaw is a hostile RTMP client: a real handshake, then chunks written by hand.
type rtmpRaw struct {
	t *testing.T
	net.Conn
	r *chunk.Reader
}

func dialRTMPRaw(t *testing.T, addr string) *rtmpRaw {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if err := handshake.Client(c); err != nil {
		t.Fatal(err)
	}
	return &rtmpRaw{t: t, Conn: c, r: chunk.NewReader(c, chunk.DefaultLimits, nil)}
}

// send writes one message on chunk stream csid in 128-byte chunks; errors are ignored
// (the server may close the connection mid-message, which is the point).
func (c *rtmpRaw) send(csid uint32, typ uint8, msid uint32, body []byte) {
	c.Write(chunk.AppendMessage(nil, &chunk.Message{ChunkStreamID: csid, Type: typ, StreamID: msid, Body: body}, chunk.DefaultChunkSize))
}

func (c *rtmpRaw) command(msid uint32, values ...any) {
	c.t.Helper()
	body, err := amf0.Encode(values...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(3, 20, msid, body)
}

// publish connects and publishes app/name, waiting for NetStream.Publish.Start.
func (c *rtmpRaw) publish(app, name string) {
	c.t.Helper()
	c.command(0, "connect", 1.0, amf0.Object{{Key: "app", Value: app}, {Key: "tcUrl", Value: "rtmp://127.0.0.1/" + app}})
	c.command(0, "createStream", 2.0, nil)
	c.command(1, "publish", 0.0, nil, name, "live")
	for {
		m, err := c.r.Read()
		if err != nil {
			c.t.Fatalf("publish %s/%s: %v", app, name, err)
		}
		if m.Type == 1 && len(m.Body) >= 4 {
			c.r.SetChunkSize(binary.BigEndian.Uint32(m.Body))
		}
		if m.Type == 20 && strings.Contains(string(m.Body), "NetStream.Publish.Start") {
			return
		}
		if m.Type == 20 && strings.Contains(string(m.Body), "error") {
			c.t.Fatalf("publish %s/%s refused: %q", app, name, m.Body)
		}
	}
}

// closedByServer reports whether the server closes c within wait.
func (c *rtmpRaw) closedByServer(wait time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return false
			}
			c.t.Logf("connection closed: %v", err)
			return true
		}
	}
}

// nestedArrays is an AMF0 value nested depth levels deep, 5 bytes a level: strict
// arrays of one element each, ending in null.
func nestedArrays(depth int) []byte {
	b := make([]byte, 0, 5*depth+1)
	for range depth {
		b = append(b, 0x0a, 0, 0, 0, 1)
	}
	return append(b, 0x05)
}

func (tg *target) expectLog(i int, what string) {
	tg.t.Helper()
	eventually(tg.t, 10*time.Second, "the log line "+what, func() bool { return strings.Contains(tg.nodes[i].Logs(), what) })
}

// TestAttackRTMPNestedAMF0 sends the AMF0 nesting that overflowed gortmplib's decoder's
// stack: as a 10 MB command right after the handshake (refused by the 64 KB command
// cap before it is read), as a 60 KB command under the cap (refused by the depth
// limit), as a 70 KB flat command (the cap), and as a publisher's 10 MB onMetaData
// (the metadata path; the data message is dropped, the publisher stays).
func TestAttackRTMPNestedAMF0(t *testing.T) {
	tg := newTarget(t, 1)
	addr := tg.nodes[0].RTMP
	prefix, _ := amf0.Encode("connect", 1.0)
	// sendNested sends a connect command nested levels deep on 3 connections, each of
	// which the server must close.
	sendNested := func(levels int) func() {
		return func() {
			body := append(prefix, nestedArrays(levels)...)
			for range 3 {
				c := dialRTMPRaw(t, addr)
				c.send(3, 20, 0, body)
				if !c.closedByServer(10 * time.Second) {
					t.Error("connection not closed")
				}
				c.Close()
			}
		}
	}
	tg.attack(0, "AMF0 command nested 2,000,000 levels (10 MB) after the handshake, 3 connections", 20, sendNested(2_000_000))
	tg.expectLog(0, "RTMP session refused: message too large")
	tg.attack(0, "AMF0 command nested 12,000 levels (60 KB) after the handshake, 3 connections", 20, sendNested(12_000))
	tg.expectLog(0, "RTMP session refused: malformed command")
	tg.attack(0, "70 KB connect command before connect", 20, func() {
		c := dialRTMPRaw(t, addr)
		defer c.Close()
		c.command(0, "connect", 1.0, amf0.Object{{Key: "app", Value: strings.Repeat("x", 70<<10)}})
		if !c.closedByServer(10 * time.Second) {
			t.Error("connection not closed")
		}
	})
	if log := tg.nodes[0].Logs(); !strings.Contains(log, `"reason":"message too large"`) || !strings.Contains(log, `"peer":"127.0.0.1:`) {
		t.Error("the refusal log line names no reason or client address")
	}
	tg.attack(0, "publisher's onMetaData nested 2,000,000 levels (10 MB)", 60, func() {
		c := dialRTMPRaw(t, addr)
		defer c.Close()
		c.publish("live", "nested")
		head, _ := amf0.Encode("@setDataFrame", "onMetaData")
		c.send(4, 18, 1, append(head, nestedArrays(2_000_000)...))
		// The session reads on: a second, sane message is taken as well.
		meta, _ := amf0.Encode("@setDataFrame", "onMetaData", amf0.ECMAArray{{Key: "width", Value: 320.0}})
		c.send(4, 18, 1, meta)
		if c.closedByServer(2 * time.Second) {
			t.Error("the publisher was dropped for a bad metadata message")
		}
	})
}

// TestAttackRTMPChunkAnnouncements is gortmplib's memory amplification: connections
// announcing a 10 MB chunk size and a 10 MB message, then sending 1 KB of it and
// holding on. Before a publish they are closed at the header; an authorized publisher's
// partial message holds only the bytes that came.
func TestAttackRTMPChunkAnnouncements(t *testing.T) {
	tg := newTarget(t, 1, "--max-publishes-per-ip", "0") // 20 publishers from one address
	addr := tg.nodes[0].RTMP
	announce := func(c *rtmpRaw) {
		c.send(2, 1, 0, binary.BigEndian.AppendUint32(nil, 10<<20))
		h := chunk.AppendHeader(nil, 6, 0, 10<<20, 9, 1)
		c.Write(append(h, make([]byte, 1000)...))
	}
	var held []*rtmpRaw
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	for _, n := range []int{20, 300} {
		tg.attack(0, fmt.Sprintf("%d connections announcing a 10 MB chunk size and message after the handshake", n), 40, func() {
			for range n {
				c := dialRTMPRaw(t, addr)
				announce(c)
				held = append(held, c)
			}
		})
	}
	tg.expectLog(0, "RTMP session refused: message too large")
	tg.attack(0, "20 publishers each announcing a 10 MB message and sending 1 KB", 40, func() {
		for i := range 20 {
			c := dialRTMPRaw(t, addr)
			c.publish("live", fmt.Sprintf("amp%d", i))
			announce(c)
			held = append(held, c)
		}
	})
}
