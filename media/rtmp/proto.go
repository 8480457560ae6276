// Package rtmp is RTMP's protocol without server state: message and command encoding
// and decoding, the connection writer that chunks control, command and media messages
// (Wire), the adapter that turns media messages into the media core's tags, and the
// client the cluster's links dial other nodes with. The RTMP server (sessions, publish
// and play handling, limits, admission) is ingress/rtmp, built on this package.
//
// Media payloads pass through as raw FLV tag bodies of any codec, shared between
// players without re-encoding.
//
// It may import the media core (media, for media.Sink), media/ingest (the adapter
// contract), and the leaves media/rtmp/chunk, media/rtmp/handshake, media/amf0,
// media/flv and media/netio; nothing of the cluster or of ingress.
package rtmp

import (
	"encoding/binary"
	"errors"
	"fmt"

	"peer/media/amf0"
	"peer/media/rtmp/chunk"
)

// RTMP message types, user control events, chunk stream ids and sizes. The
// commands and data types, the ids of the command and status chunk streams and
// the media stream are what a server needs; the rest Wire handles itself.
const (
	TypeSetChunkSize  = 1
	typeAbort         = 2
	typeAck           = 3
	typeUserControl   = 4
	typeWindowAckSize = 5
	typeSetPeerBW     = 6
	TypeDataAMF3      = 15
	TypeCommandAMF3   = 17
	TypeDataAMF0      = 18
	TypeCommandAMF0   = 20
	UserStreamBegin   = 0
	userPingRequest   = 6
	userPingResponse  = 7
	csidControl       = 2
	CSIDCommand       = 3
	CSIDStatus        = 5
	// MediaStreamID is the message stream every publish and play runs on (createStream's answer).
	MediaStreamID = 1
	// DefaultWindowAck is the acknowledgement window and peer bandwidth a server announces.
	DefaultWindowAck = 2500000
	maxChunkSize     = 1 << 24
	// OutChunkSize is SRS's default: a 2 Mbit/s frame goes out as one chunk, so a player's
	// write carries a header and a body slice per message instead of one per 4 KiB.
	OutChunkSize = 60000
)

func control(typ uint8, body []byte) *chunk.Message {
	return &chunk.Message{ChunkStreamID: csidControl, Type: typ, Body: body}
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// SetChunkSize is the control message announcing the sender's chunk size n.
func SetChunkSize(n uint32) *chunk.Message { return control(TypeSetChunkSize, u32(n)) }

// WindowAckSize is the control message asking the peer to acknowledge every n bytes.
func WindowAckSize(n uint32) *chunk.Message { return control(typeWindowAckSize, u32(n)) }

// Ack acknowledges n bytes received.
func Ack(n uint32) *chunk.Message { return control(typeAck, u32(n)) }

// PeerBandwidth is the control message limiting the peer's output to n bytes a window
// (dynamic limit type).
func PeerBandwidth(n uint32) *chunk.Message {
	return control(typeSetPeerBW, append(u32(n), 2))
}

// UserControl is a user control message: event (UserStreamBegin, ...) with its data.
func UserControl(event uint16, data uint32) *chunk.Message {
	b := binary.BigEndian.AppendUint16(nil, event)
	return control(typeUserControl, binary.BigEndian.AppendUint32(b, data))
}

// EncodeCommand builds an AMF0 command message of the values on chunk stream csid.
func EncodeCommand(csid byte, streamID uint32, values ...any) (*chunk.Message, error) {
	body, err := amf0.Encode(values...)
	if err != nil {
		return nil, err
	}
	return &chunk.Message{ChunkStreamID: uint32(csid), Type: TypeCommandAMF0, StreamID: streamID, Body: body}, nil
}

// Status is the information object of a status event or reply.
func Status(level, code, desc string) amf0.Object {
	return amf0.Object{{Key: "level", Value: level}, {Key: "code", Value: code}, {Key: "description", Value: desc}}
}

// OnStatus builds a NetStream status event for the media stream.
func OnStatus(level, code, desc string) (*chunk.Message, error) {
	return EncodeCommand(CSIDStatus, MediaStreamID, "onStatus", float64(0), nil, Status(level, code, desc))
}

// Command is a decoded AMF command: name, transaction id, command object, arguments.
type Command struct {
	Name   string
	TxID   float64
	Object amf0.Object
	Args   []any
}

// ErrMalformed classes a command that does not decode (for a server's refusal log).
var ErrMalformed = errors.New("malformed message")

// DecodeCommand parses an AMF0 (or AMF3-wrapped AMF0) command body.
func DecodeCommand(typ uint8, body []byte) (*Command, error) {
	if typ == TypeCommandAMF3 {
		if len(body) == 0 {
			return nil, fmt.Errorf("%w: empty AMF3 command", ErrMalformed)
		}
		body = body[1:]
	}
	v, err := amf0.Decode(body)
	if err != nil {
		return nil, fmt.Errorf("%w: AMF0 command: %w", ErrMalformed, err)
	}
	if len(v) < 2 {
		return nil, fmt.Errorf("%w: command with %d values", ErrMalformed, len(v))
	}
	c := &Command{}
	var ok bool
	if c.Name, ok = v[0].(string); !ok {
		return nil, fmt.Errorf("%w: command name is %T", ErrMalformed, v[0])
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
