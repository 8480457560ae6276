package rtmp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"peer/media"
	"peer/media/amf0"
	"peer/media/flv"
	"peer/media/rtmp"
	"peer/media/rtmp/chunk"
	"peer/media/rtmp/handshake"
	"peer/placement/dataplane"
)

// rawConn is a test client that writes chunks by hand after a real handshake.
type rawConn struct {
	t *testing.T
	net.Conn
	r *chunk.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := handshake.Client(c); err != nil {
		t.Fatal(err)
	}
	return &rawConn{t: t, Conn: c, r: chunk.NewReader(c, chunk.DefaultLimits, nil)}
}

func (c *rawConn) command(msid uint32, values ...any) {
	c.t.Helper()
	body, err := amf0.Encode(values...)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.Write(chunk.AppendMessage(nil, &chunk.Message{ChunkStreamID: 3, Type: rtmp.TypeCommandAMF0, StreamID: msid, Body: body}, chunk.DefaultChunkSize)); err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next command the server sent, applying its chunk size.
func (c *rawConn) next() (chunk.Message, *rtmp.Command, error) {
	for {
		m, err := c.r.Read()
		if err != nil {
			return m, nil, err
		}
		switch m.Type {
		case rtmp.TypeSetChunkSize:
			c.r.SetChunkSize(uint32(m.Body[0])<<24 | uint32(m.Body[1])<<16 | uint32(m.Body[2])<<8 | uint32(m.Body[3]))
		case rtmp.TypeCommandAMF0:
			cmd, err := rtmp.DecodeCommand(m.Type, m.Body)
			return m, cmd, err
		}
	}
}

// until reads commands until one named name.
func (c *rawConn) until(name string) (chunk.Message, *rtmp.Command) {
	c.t.Helper()
	for {
		m, cmd, err := c.next()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", name, err)
		}
		if cmd.Name == name {
			return m, cmd
		}
	}
}

func (c *rawConn) connect() {
	c.t.Helper()
	c.command(0, "connect", 1.0, amf0.Object{{Key: "app", Value: "live"}, {Key: "tcUrl", Value: "rtmp://127.0.0.1/live"}})
	c.until("_result")
}

// TestPlayerAnswers: a player's calls get the answers clients expect: getStreamLength a
// number (ffmpeg), FCSubscribe onFCSubscribe, and every status on the media stream
// with its id on the wire little-endian (GStreamer's rtmp2src checks it).
func TestPlayerAnswers(t *testing.T) {
	addr, _ := startServer(t)
	c := dialRaw(t, addr)
	c.connect()
	c.command(0, "createStream", 2.0, nil)
	c.until("_result")
	c.command(0, "getStreamLength", 3.0, nil, "x")
	_, res := c.until("_result")
	if res.TxID != 3 || len(res.Args) != 1 {
		t.Fatalf("getStreamLength: %+v", res)
	}
	if _, ok := res.Args[0].(float64); !ok {
		t.Fatalf("getStreamLength answered %T, ffmpeg wants a number", res.Args[0])
	}
	c.command(0, "FCSubscribe", 4.0, nil, "x")
	c.until("onFCSubscribe")
	c.command(1, "play", 0.0, nil, "x", -2000.0)
	m, st := c.until("onStatus")
	info, _ := amf0.AsObject(st.Args[0])
	if code, _ := info.GetString("code"); code != "NetStream.Play.Reset" || m.StreamID != rtmp.MediaStreamID {
		t.Fatalf("play status %q on message stream %d", code, m.StreamID)
	}
}

// TestCommandTooLargeBeforePublish: a command over 64 KB before a publish is authorized
// closes the connection.
func TestCommandTooLargeBeforePublish(t *testing.T) {
	addr, _ := startServer(t)
	c := dialRaw(t, addr)
	c.command(0, "connect", 1.0, amf0.Object{{Key: "app", Value: strings.Repeat("a", 70<<10)}})
	if _, _, err := c.next(); err == nil || errors.Is(err, chunk.ErrMessageTooLarge) {
		t.Fatalf("server answered a 70 KB command: %v", err)
	}
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("connection not closed: %v", err)
	}
}

// TestNestedCommand: a command nested past the AMF0 depth limit closes the connection
// and the server goes on serving.
func TestNestedCommand(t *testing.T) {
	addr, _ := startServer(t)
	c := dialRaw(t, addr)
	body, _ := amf0.Encode("connect", 1.0)
	for range 10000 {
		body = append(body, 0x0a, 0, 0, 0, 1) // strict array of one
	}
	body = append(body, 5)
	c.Write(chunk.AppendMessage(nil, &chunk.Message{ChunkStreamID: 3, Type: rtmp.TypeCommandAMF0, Body: body}, chunk.DefaultChunkSize))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("connection not closed: %v", err)
	}
	dialRaw(t, addr).connect()
}

func TestPublishStatus(t *testing.T) {
	addr, _ := startServer(t)
	first, err := rtmp.DialPublish(context.Background(), addr, "live", "busy", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	_, err = rtmp.DialPublish(context.Background(), addr, "live", "busy", 5*time.Second)
	var st *rtmp.StatusError
	if !errors.As(err, &st) || st.Code != "NetStream.Publish.BadName" {
		t.Fatalf("second publisher: %v", err)
	}

	timeout := &net.OpError{Op: "dial", Err: timeoutErr{}}
	for err, want := range map[error]string{
		fmt.Errorf("x: %w", media.ErrBusy):                     "NetStream.Publish.BadName",
		fmt.Errorf("link: %w", dataplane.ErrNotAuthorized):     "NetStream.Publish.Denied",
		fmt.Errorf("%w: %w", dataplane.ErrUnavailable, io.EOF): "NetStream.Publish.Unavailable",
		fmt.Errorf("relay: %w", context.DeadlineExceeded):      "NetStream.Publish.Timeout",
		fmt.Errorf("relay: %w", timeout):                       "NetStream.Publish.Timeout",
		fmt.Errorf("master: %w", &rtmp.StatusError{Code: "C"}): "C",
		errors.New("disk on fire"):                             "NetStream.Failed",
	} {
		if got := publishStatus(err); got != want {
			t.Errorf("%v: %s, want %s", err, got, want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// TestPlayerCommandsAfterPlay: a playing client's messages are still read and answered,
// one after another with pauses between (each pause parks its reader in awaitPlayer),
// and its deleteStream ends the session: the connection closes and the player leaves.
func TestPlayerCommandsAfterPlay(t *testing.T) {
	addr, hub := startServer(t)
	pub, err := rtmp.DialPublish(context.Background(), addr, "live", "x", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if _, err := pub.WriteTags([]*flv.Tag{flv.NewTag(flv.TypeVideo, 0, avcSeq), flv.NewTag(flv.TypeVideo, 0, keyframe)}); err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, addr)
	c.connect()
	c.command(0, "createStream", 2.0, nil)
	c.until("_result")
	c.command(1, "play", 3.0, nil, "x")
	c.until("onStatus")
	for tx := 4.0; tx < 7; tx++ {
		time.Sleep(20 * time.Millisecond)
		c.command(0, "getStreamLength", tx, nil, "x")
		if _, res := c.until("_result"); res.TxID != tx {
			t.Fatalf("answer to transaction %v: %+v", tx, res)
		}
	}
	c.command(1, "deleteStream", 7.0, nil, 1.0)
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("connection not closed after deleteStream: %v", err)
	}
	waitPlayers(t, hub, "live/x", 0)
}

// waitPlayers polls until stream has n players.
func waitPlayers(t *testing.T, hub *media.Hub, stream string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		streams, _ := hub.Snapshot()
		got := 0
		for _, s := range streams {
			if s.App+"/"+s.Name == stream {
				got = s.Players
			}
		}
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d players, want %d", stream, got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
