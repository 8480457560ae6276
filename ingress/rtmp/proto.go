// Package rtmp speaks RTMP on top of gortmplib's handshake, chunk and AMF0 layers. The
// session logic (commands, publish, play) is ours so media payloads pass through as raw
// FLV tag bodies of any codec, shared between players without re-encoding.
package rtmp

import (
	"encoding/binary"
	"fmt"

	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/rawmessage"
)

// RTMP message types used here.
const (
	typeSetChunkSize  = 1
	typeAbort         = 2
	typeAck           = 3
	typeUserControl   = 4
	typeWindowAckSize = 5
	typeSetPeerBW     = 6
	typeDataAMF3      = 15
	typeCommandAMF3   = 17
	typeDataAMF0      = 18
	typeCommandAMF0   = 20
	userStreamBegin   = 0
	userPingRequest   = 6
	userPingResponse  = 7
	csidControl       = 2
	csidCommand       = 3
	csidStatus        = 5
	mediaStreamID     = 1
	defaultWindowAck  = 2500000
	maxChunkSize      = 1 << 24
	// outChunkSize is SRS's default: a 2 Mbit/s frame goes out as one chunk, so a player's
	// write carries a header and a body slice per message instead of one per 4 KiB.
	outChunkSize = 60000
)

func control(typ uint8, body []byte) *rawmessage.Message {
	return &rawmessage.Message{ChunkStreamID: csidControl, Type: typ, Body: body}
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func setChunkSize(n uint32) *rawmessage.Message  { return control(typeSetChunkSize, u32(n)) }
func windowAckSize(n uint32) *rawmessage.Message { return control(typeWindowAckSize, u32(n)) }
func ack(n uint32) *rawmessage.Message           { return control(typeAck, u32(n)) }
func peerBandwidth(n uint32) *rawmessage.Message {
	return control(typeSetPeerBW, append(u32(n), 2))
}

func userControl(event uint16, data uint32) *rawmessage.Message {
	b := binary.BigEndian.AppendUint16(nil, event)
	return control(typeUserControl, binary.BigEndian.AppendUint32(b, data))
}

// command builds an AMF0 command message.
func command(csid byte, streamID uint32, values ...any) (*rawmessage.Message, error) {
	body, err := amf0.Data(values).Marshal()
	if err != nil {
		return nil, err
	}
	return &rawmessage.Message{ChunkStreamID: csid, Type: typeCommandAMF0, MessageStreamID: streamID, Body: body}, nil
}

func status(level, code, desc string) amf0.Object {
	return amf0.Object{{Key: "level", Value: level}, {Key: "code", Value: code}, {Key: "description", Value: desc}}
}

// onStatus builds a NetStream status event for the media stream.
func onStatus(level, code, desc string) (*rawmessage.Message, error) {
	return command(csidStatus, mediaStreamID, "onStatus", float64(0), nil, status(level, code, desc))
}

// Command is a decoded AMF command: name, transaction id, command object, arguments.
type Command struct {
	Name   string
	TxID   float64
	Object amf0.Object
	Args   []any
}

// decodeCommand parses an AMF0 (or AMF3-wrapped AMF0) command body.
func decodeCommand(typ uint8, body []byte) (*Command, error) {
	if typ == typeCommandAMF3 {
		if len(body) == 0 {
			return nil, fmt.Errorf("empty AMF3 command")
		}
		body = body[1:]
	}
	v, err := amf0.Unmarshal(body)
	if err != nil {
		return nil, fmt.Errorf("malformed AMF0 command: %w", err)
	}
	if len(v) < 2 {
		return nil, fmt.Errorf("command with %d values", len(v))
	}
	c := &Command{}
	var ok bool
	if c.Name, ok = v[0].(string); !ok {
		return nil, fmt.Errorf("command name is %T", v[0])
	}
	c.TxID, _ = v[1].(float64)
	if len(v) > 2 {
		switch o := v[2].(type) {
		case amf0.Object:
			c.Object = o
		case amf0.ECMAArray:
			c.Object = amf0.Object(o)
		}
		c.Args = v[3:]
	}
	return c, nil
}

// Arg returns argument i as a string.
func (c *Command) Arg(i int) (string, bool) {
	if i >= len(c.Args) {
		return "", false
	}
	s, ok := c.Args[i].(string)
	return s, ok
}
