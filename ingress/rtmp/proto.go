// Package rtmp speaks RTMP: the session logic (commands, publish, play) over the
// handshake, chunk and AMF0 layers of its subpackages. Media payloads pass through as
// raw FLV tag bodies of any codec, shared between players without re-encoding.
package rtmp

import (
	"encoding/binary"
	"errors"
	"fmt"

	"peer/ingress/rtmp/chunk"
	"peer/media/amf0"
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

// Reader limits of a server connection. Until a publish is authorized a client sends
// only commands and control messages (ffmpeg's connect is 140 bytes), so anything larger
// than commandLimits allow is refused before it costs memory; an authorized publisher
// gets room for keyframes.
var (
	commandLimits = chunk.Limits{MaxMessage: 64 << 10, MaxBuffered: 128 << 10, MaxChunkStreams: 32}
	mediaLimits   = chunk.DefaultLimits
)

func control(typ uint8, body []byte) *chunk.Message {
	return &chunk.Message{ChunkStreamID: csidControl, Type: typ, Body: body}
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func setChunkSize(n uint32) *chunk.Message  { return control(typeSetChunkSize, u32(n)) }
func windowAckSize(n uint32) *chunk.Message { return control(typeWindowAckSize, u32(n)) }
func ack(n uint32) *chunk.Message           { return control(typeAck, u32(n)) }
func peerBandwidth(n uint32) *chunk.Message {
	return control(typeSetPeerBW, append(u32(n), 2))
}

func userControl(event uint16, data uint32) *chunk.Message {
	b := binary.BigEndian.AppendUint16(nil, event)
	return control(typeUserControl, binary.BigEndian.AppendUint32(b, data))
}

// command builds an AMF0 command message.
func command(csid byte, streamID uint32, values ...any) (*chunk.Message, error) {
	body, err := amf0.Encode(values...)
	if err != nil {
		return nil, err
	}
	return &chunk.Message{ChunkStreamID: uint32(csid), Type: typeCommandAMF0, StreamID: streamID, Body: body}, nil
}

func status(level, code, desc string) amf0.Object {
	return amf0.Object{{Key: "level", Value: level}, {Key: "code", Value: code}, {Key: "description", Value: desc}}
}

// onStatus builds a NetStream status event for the media stream.
func onStatus(level, code, desc string) (*chunk.Message, error) {
	return command(csidStatus, mediaStreamID, "onStatus", float64(0), nil, status(level, code, desc))
}

// Command is a decoded AMF command: name, transaction id, command object, arguments.
type Command struct {
	Name   string
	TxID   float64
	Object amf0.Object
	Args   []any
}

// Classes of session errors, for the refusal log.
var (
	errMalformed = errors.New("malformed message")
	errHandshake = errors.New("handshake")
)

// decodeCommand parses an AMF0 (or AMF3-wrapped AMF0) command body.
func decodeCommand(typ uint8, body []byte) (*Command, error) {
	if typ == typeCommandAMF3 {
		if len(body) == 0 {
			return nil, fmt.Errorf("%w: empty AMF3 command", errMalformed)
		}
		body = body[1:]
	}
	v, err := amf0.Decode(body)
	if err != nil {
		return nil, fmt.Errorf("%w: AMF0 command: %w", errMalformed, err)
	}
	if len(v) < 2 {
		return nil, fmt.Errorf("%w: command with %d values", errMalformed, len(v))
	}
	c := &Command{}
	var ok bool
	if c.Name, ok = v[0].(string); !ok {
		return nil, fmt.Errorf("%w: command name is %T", errMalformed, v[0])
	}
	c.TxID, _ = v[1].(float64)
	if len(v) > 2 {
		c.Object, _ = amf0.AsObject(v[2])
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
