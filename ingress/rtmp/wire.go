package rtmp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/rawmessage"
)

// wire is one RTMP connection after the handshake: gortmplib's chunk reader, and its
// chunk writer into a buffer that flush sends with one write under a deadline. Server
// sessions and clients share it; callers serialize writes.
type wire struct {
	conn         net.Conn
	in           *bytecounter.Reader
	r            *rawmessage.Reader
	out          bytes.Buffer
	bw           *bytecounter.Writer
	w            *rawmessage.Writer
	writeTimeout time.Duration
}

// init sets up the chunk layers; ack sends an acknowledgement when the peer's window
// fills (it must take whatever lock guards writes).
func (c *wire) init(conn net.Conn, writeTimeout time.Duration, ack func(uint32) error) {
	c.conn, c.writeTimeout = conn, writeTimeout
	c.in = bytecounter.NewReader(conn)
	c.r = rawmessage.NewReader(c.in, c.in, ack)
	c.bw = bytecounter.NewWriter(&c.out)
	c.w = rawmessage.NewWriter(c.bw, c.bw, false)
}

// write chunks messages into the buffer and flushes it.
func (c *wire) write(msgs ...*rawmessage.Message) error {
	for _, m := range msgs {
		if err := c.w.Write(m); err != nil {
			return err
		}
	}
	return c.flush()
}

func (c *wire) flush() error {
	if c.out.Len() == 0 {
		return nil
	}
	c.conn.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	_, err := c.conn.Write(c.out.Bytes())
	c.out.Reset()
	return err
}

// control applies a protocol control message (chunk size, window, abort, ping; acks and
// peer bandwidth need nothing) and reports whether msg was one. send answers pings.
func (c *wire) control(msg *rawmessage.Message, send func(*rawmessage.Message) error) (bool, error) {
	body := msg.Body
	switch msg.Type {
	case typeSetChunkSize:
		if len(body) < 4 {
			return true, errors.New("short SetChunkSize")
		}
		n := binary.BigEndian.Uint32(body) & 0x7fffffff
		if n < 1 || n > maxChunkSize {
			return true, fmt.Errorf("chunk size %d out of range", n)
		}
		return true, c.r.SetChunkSize(n)
	case typeAbort:
		if len(body) >= 4 {
			c.r.AbortChunkStream(binary.BigEndian.Uint32(body))
		}
	case typeWindowAckSize:
		if len(body) >= 4 {
			c.r.SetWindowAckSize(binary.BigEndian.Uint32(body))
		}
	case typeUserControl:
		if len(body) >= 6 && binary.BigEndian.Uint16(body) == userPingRequest {
			return true, send(userControl(userPingResponse, binary.BigEndian.Uint32(body[2:])))
		}
	case typeAck, typeSetPeerBW:
	default:
		return false, nil
	}
	return true, nil
}
