package rtmp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"peer/media"
	"peer/media/amf0"
	"peer/media/flv"
	"peer/media/ingest"
	"peer/media/rtmp/chunk"
	"peer/media/rtmp/handshake"
)

// Client is an RTMP client connection that either publishes or plays one stream. The
// cluster's links (relay to a master, forward to replicas, edge pull) use it; one
// goroutine drives it.
type Client struct {
	w       Wire
	conn    net.Conn
	timeout time.Duration
	txID    float64
}

// ErrRefused is what a StatusError is (errors.Is): the server refused.
var ErrRefused = errors.New("refused by server")

// StatusError is an error status a server answered a publish or play with (e.g. a busy
// stream); a node that relays the publish hands the code on to its own client.
type StatusError struct {
	Code, Description string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%v: %s: %s", ErrRefused, e.Code, e.Description)
}

// Is makes a StatusError match ErrRefused.
func (e *StatusError) Is(target error) bool { return target == ErrRefused }

// DialPublish connects to addr and starts publishing app/stream (stream may carry a
// ?query); it returns once the server confirmed NetStream.Publish.Start.
func DialPublish(ctx context.Context, addr, app, stream string, timeout time.Duration) (*Client, error) {
	return dial(ctx, addr, app, stream, true, timeout)
}

// DialPlay connects to addr and starts playing app/stream.
func DialPlay(ctx context.Context, addr, app, stream string, timeout time.Duration) (*Client, error) {
	return dial(ctx, addr, app, stream, false, timeout)
}

func dial(ctx context.Context, addr, app, stream string, publish bool, timeout time.Duration) (*Client, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &Client{timeout: timeout}
	c.conn = conn
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := c.start(addr, app, stream, publish); err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return c, nil
}

func (c *Client) start(addr, app, stream string, publish bool) error {
	c.conn.SetDeadline(time.Now().Add(c.timeout))
	defer c.conn.SetDeadline(time.Time{})
	if err := handshake.Client(c.conn); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	// The server may be any RTMP server: media limits from the start.
	c.w.Init(c.conn, c.timeout, chunk.DefaultLimits, func(n uint32) error { return c.w.Write(Ack(n)) })
	if err := c.w.Write(SetChunkSize(OutChunkSize)); err != nil {
		return err
	}
	c.w.SetOutChunkSize(OutChunkSize)
	tcURL := "rtmp://" + addr + "/" + app
	if _, err := c.call(CSIDCommand, 0, "connect", amf0.Object{
		{Key: "app", Value: app}, {Key: "type", Value: "nonprivate"}, {Key: "flashVer", Value: "FMLE/3.0 (compatible; peer)"},
		{Key: "tcUrl", Value: tcURL}}); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if _, err := c.call(CSIDCommand, 0, "createStream", nil); err != nil {
		return fmt.Errorf("createStream: %w", err)
	}
	name, args := "play", []any{stream, float64(-2000)}
	want := "NetStream.Play.Start"
	if publish {
		name, args, want = "publish", []any{stream, "live"}, "NetStream.Publish.Start"
	}
	msg, err := EncodeCommand(CSIDStatus+3, MediaStreamID, append([]any{name, float64(0), nil}, args...)...)
	if err != nil {
		return err
	}
	if err := c.w.Write(msg); err != nil {
		return err
	}
	for {
		cmd, err := c.readCommand()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if cmd.Name != "onStatus" || len(cmd.Args) == 0 {
			continue
		}
		info, _ := amf0.AsObject(cmd.Args[0])
		code, _ := info.GetString("code")
		level, _ := info.GetString("level")
		desc, _ := info.GetString("description")
		switch {
		case code == want:
			return nil
		case level == "error":
			return &StatusError{Code: code, Description: desc}
		}
	}
}

// call sends a command and waits for its _result.
func (c *Client) call(csid byte, streamID uint32, name string, obj any, args ...any) (*Command, error) {
	c.txID++
	tx := c.txID
	msg, err := EncodeCommand(csid, streamID, append([]any{name, tx, obj}, args...)...)
	if err != nil {
		return nil, err
	}
	if err := c.w.Write(msg); err != nil {
		return nil, err
	}
	for {
		cmd, err := c.readCommand()
		if err != nil {
			return nil, err
		}
		if cmd.TxID != tx {
			continue
		}
		if cmd.Name == "_error" {
			return nil, fmt.Errorf("%w: %v", ErrRefused, cmd.Args)
		}
		if cmd.Name == "_result" {
			return cmd, nil
		}
	}
}

// readCommand reads until the next command, handling control messages on the way.
func (c *Client) readCommand() (*Command, error) {
	for {
		msg, err := c.read()
		if err != nil {
			return nil, err
		}
		if msg.Type == TypeCommandAMF0 || msg.Type == TypeCommandAMF3 {
			return DecodeCommand(msg.Type, msg.Body)
		}
	}
}

// read returns the next message that is not a protocol control message; its body is
// valid until the next read.
func (c *Client) read() (chunk.Message, error) {
	for {
		c.conn.SetReadDeadline(time.Now().Add(c.timeout))
		msg, err := c.w.r.Read()
		if err != nil {
			return msg, err
		}
		handled, err := c.w.Control(&msg, func(m *chunk.Message) error { return c.w.Write(m) })
		if err != nil {
			return msg, err
		}
		if !handled {
			return msg, nil
		}
	}
}

// ReadMedia returns the next audio, video or script message of a playing client. Its
// Body is valid until the next ReadMedia.
func (c *Client) ReadMedia() (chunk.Message, error) {
	for {
		msg, err := c.read()
		if err != nil {
			return msg, err
		}
		switch msg.Type {
		case flv.TypeAudio, flv.TypeVideo, TypeDataAMF0:
			return msg, nil
		case TypeCommandAMF0, TypeCommandAMF3:
			if cmd, err := DecodeCommand(msg.Type, msg.Body); err == nil && cmd.Name == "onStatus" && len(cmd.Args) > 0 {
				info, _ := amf0.AsObject(cmd.Args[0])
				if code, _ := info.GetString("code"); code == "NetStream.Play.Stop" || code == "NetStream.Play.UnpublishNotify" {
					return chunk.Message{}, fmt.Errorf("upstream ended: %s", code)
				}
			}
		}
	}
}

// ReadTag is the RTMP adapter of a playing client (ingest.Reader): the next media
// message as a tag, its Data valid until the next ReadTag.
func (c *Client) ReadTag() (ingest.Tag, error) {
	msg, err := c.ReadMedia()
	if err != nil {
		return ingest.Tag{}, err
	}
	t, _ := MediaTag(&msg) // ReadMedia returns media only
	return t, nil
}

// WriteTags publishes tags with one write, straight from their shared bytes, and
// returns the media bytes sent (a rest TryWrite left pending included).
func (c *Client) WriteTags(tags []*flv.Tag) (int64, error) {
	return c.w.WriteTags(tags)
}

// TryWrite makes a publishing client a media.Sink: the stream's fan-out writes to the
// link from the publisher's goroutine, with no goroutine to wake per frame, and hands
// over to the link's goroutine (WriteTags) when the socket does not take everything.
// The player's writer handoff keeps the two from writing at once; a publishing client
// writes nothing else.
func (c *Client) TryWrite(tags []*flv.Tag) (int, media.SinkResult, error) {
	return c.w.TryWriteTags(tags)
}

// Close ends the connection.
func (c *Client) Close() error { return c.conn.Close() }
