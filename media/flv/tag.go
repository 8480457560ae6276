// Package flv holds the unit every media path shares: one RTMP media message serialized
// once as a complete FLV tag. Players of every protocol read the same bytes, so a tag is
// immutable after NewTag and never copied per player. Reader reads an FLV byte stream
// (HTTP-FLV, a file) into tags, bounded against hostile lengths; media/ingest makes it
// an ingest adapter.
//
// It is a leaf: the standard library only.
package flv

import (
	"encoding/binary"
	"sync/atomic"
)

// Tag types, as in the FLV spec and RTMP message types.
const (
	TypeAudio  uint8 = 8
	TypeVideo  uint8 = 9
	TypeScript uint8 = 18
)

// Codec ids carried in the first byte of audio and video tag data.
const (
	VideoH264 uint8 = 7
	AudioAAC  uint8 = 10
)

// HeaderLen and TrailerLen frame Data inside Raw.
const (
	HeaderLen  = 11
	TrailerLen = 4
)

// FileHeader is the FLV file header announcing audio and video, followed by
// PreviousTagSize0.
var FileHeader = []byte{'F', 'L', 'V', 1, FlagsAudio | FlagsVideo, 0, 0, 0, 9, 0, 0, 0, 0}

// Track flags of the FLV file header.
const (
	FlagsAudio = 0x04
	FlagsVideo = 0x01
)

// AppendFileHeader appends a file header announcing the tracks in flags.
func AppendFileHeader(b []byte, flags byte) []byte {
	n := len(b)
	b = append(b, FileHeader...)
	b[n+4] = flags
	return b
}

// Tag is one media message: audio, video or script data.
type Tag struct {
	Type uint8
	// Time is the stream time in milliseconds, unwrapped past 2^32 so it only grows
	// within one publish; the wire formats truncate it to 32 bits.
	Time int64
	// Raw is the whole FLV tag: 11-byte header, data, 4-byte PreviousTagSize.
	Raw []byte
	// framing is another wire format's headers for Data (RTMP's chunk headers), made by
	// the first writer that needs them and shared by every player after (Framing).
	framing atomic.Pointer[[]byte]
}

// Framing returns the headers another wire format puts around Data, made by frame on
// the first call and the same bytes for every call after, from any goroutine: a
// format whose headers do not vary per player frames a tag once, not once per player.
// Only one format may use it; the bytes must not be modified.
func (t *Tag) Framing(frame func(*Tag) []byte) []byte {
	if b := t.framing.Load(); b != nil {
		return *b
	}
	b := frame(t)
	if !t.framing.CompareAndSwap(nil, &b) {
		return *t.framing.Load()
	}
	return b
}

// NewTag copies data once into a freshly serialized FLV tag.
func NewTag(typ uint8, timeMS int64, data []byte) *Tag {
	n := len(data)
	raw := make([]byte, HeaderLen+n+TrailerLen)
	raw[0] = typ
	raw[1], raw[2], raw[3] = byte(n>>16), byte(n>>8), byte(n)
	ts := uint32(timeMS)
	raw[4], raw[5], raw[6] = byte(ts>>16), byte(ts>>8), byte(ts)
	raw[7] = byte(ts >> 24)
	copy(raw[HeaderLen:], data)
	binary.BigEndian.PutUint32(raw[HeaderLen+n:], uint32(HeaderLen+n))
	return &Tag{Type: typ, Time: timeMS, Raw: raw}
}

// Data is the tag body, the same bytes as the RTMP message payload.
func (t *Tag) Data() []byte { return t.Raw[HeaderLen : len(t.Raw)-TrailerLen] }

// Size is the length of Data.
func (t *Tag) Size() int { return len(t.Raw) - HeaderLen - TrailerLen }

// VideoCodec returns the codec id of a video tag, 0 otherwise.
func (t *Tag) VideoCodec() uint8 {
	if t.Type != TypeVideo || t.Size() < 1 {
		return 0
	}
	return t.Raw[HeaderLen] & 0x0f
}

// AudioCodec returns the sound format of an audio tag, 0xff otherwise (0 is a valid
// format: linear PCM).
func (t *Tag) AudioCodec() uint8 {
	if t.Type != TypeAudio || t.Size() < 1 {
		return 0xff
	}
	return t.Raw[HeaderLen] >> 4
}

// IsKeyframe reports a video keyframe (frame type 1) that is not a sequence header.
func (t *Tag) IsKeyframe() bool {
	return t.Type == TypeVideo && t.Size() >= 2 && t.Raw[HeaderLen]>>4 == 1 && !t.IsSequenceHeader()
}

// IsSequenceHeader reports an AVC decoder configuration or an AAC AudioSpecificConfig.
func (t *Tag) IsSequenceHeader() bool {
	if t.Size() < 2 {
		return false
	}
	switch t.Type {
	case TypeVideo:
		return t.VideoCodec() == VideoH264 && t.Raw[HeaderLen+1] == 0
	case TypeAudio:
		return t.AudioCodec() == AudioAAC && t.Raw[HeaderLen+1] == 0
	}
	return false
}

// CompositionTime is the AVC composition offset (PTS - DTS) in milliseconds.
func (t *Tag) CompositionTime() int32 {
	if t.VideoCodec() != VideoH264 || t.Size() < 5 {
		return 0
	}
	d := t.Raw[HeaderLen+2:]
	return int32(uint32(d[0])<<24|uint32(d[1])<<16|uint32(d[2])<<8) >> 8
}

// Payload is the codec payload after the FLV audio/video tag header: AVCC NAL units or
// an avcC record for H.264, raw AAC or an AudioSpecificConfig for AAC.
func (t *Tag) Payload() []byte {
	d := t.Data()
	switch {
	case t.VideoCodec() == VideoH264 && len(d) >= 5:
		return d[5:]
	case t.AudioCodec() == AudioAAC && len(d) >= 2:
		return d[2:]
	case len(d) >= 1:
		return d[1:]
	}
	return nil
}
