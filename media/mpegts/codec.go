package mpegts

import (
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

var errShort = errors.New("truncated")

// AVCConfig is what an AVC sequence header (avcC record) gives the packager.
type AVCConfig struct {
	lengthSize int    // bytes of each NALU length prefix in frames
	paramSets  []byte // SPS and PPS in Annex-B, inserted before IDR pictures
	Width      int
	Height     int
}

// ParseAVCC reads an AVCDecoderConfigurationRecord (ISO 14496-15 5.3.3.1).
func ParseAVCC(rec []byte) (*AVCConfig, error) {
	if len(rec) < 6 || rec[0] != 1 {
		return nil, errors.New("not an avcC record")
	}
	c := &AVCConfig{lengthSize: int(rec[4]&3) + 1}
	p := rec[5:]
	var sps []byte
	for set := range 2 { // SPS list, then PPS list
		if len(p) < 1 {
			return nil, errShort
		}
		n := int(p[0])
		if set == 0 {
			n &= 0x1f
		}
		p = p[1:]
		for range n {
			if len(p) < 2 {
				return nil, errShort
			}
			l := int(p[0])<<8 | int(p[1])
			if len(p) < 2+l || l == 0 {
				return nil, errShort
			}
			if set == 0 && sps == nil {
				sps = p[2 : 2+l]
			}
			c.paramSets = append(append(c.paramSets, 0, 0, 0, 1), p[2:2+l]...)
			p = p[2+l:]
		}
	}
	if sps == nil {
		return nil, errors.New("avcC has no SPS")
	}
	var s h264.SPS
	if err := s.Unmarshal(sps); err != nil {
		return nil, fmt.Errorf("SPS: %w", err)
	}
	c.Width, c.Height = s.Width(), s.Height()
	return c, nil
}

// aud is an access unit delimiter (primary_pic_type 7: any slice type); HLS wants one at
// the start of every video PES.
var aud = []byte{0, 0, 0, 1, byte(h264.NALUTypeAccessUnitDelimiter), 0xf0}

// AppendAnnexB converts one AVCC access unit to Annex-B: an AUD, SPS/PPS when the unit
// has an IDR slice but no SPS of its own, then the NAL units (minus any AUD of their own).
func AppendAnnexB(dst []byte, c *AVCConfig, au []byte) ([]byte, error) {
	var idr, sps bool
	err := eachNALU(au, c.lengthSize, func(n []byte) {
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeIDR:
			idr = true
		case h264.NALUTypeSPS:
			sps = true
		}
	})
	if err != nil {
		return dst, err
	}
	dst = append(dst, aud...)
	if idr && !sps {
		dst = append(dst, c.paramSets...)
	}
	_ = eachNALU(au, c.lengthSize, func(n []byte) {
		if h264.NALUType(n[0]&0x1f) != h264.NALUTypeAccessUnitDelimiter {
			dst = append(append(dst, 0, 0, 0, 1), n...)
		}
	})
	return dst, nil
}

func eachNALU(au []byte, lengthSize int, f func([]byte)) error {
	for len(au) > 0 {
		if len(au) < lengthSize {
			return errShort
		}
		n := 0
		for _, b := range au[:lengthSize] {
			n = n<<8 | int(b)
		}
		au = au[lengthSize:]
		if n > len(au) {
			return errShort
		}
		if n > 0 {
			f(au[:n])
		}
		au = au[n:]
	}
	return nil
}

// AACConfig holds the ADTS header built from an AudioSpecificConfig, with a zero frame
// length to be filled in per frame.
type AACConfig struct {
	adts       [7]byte
	SampleRate int
	Channels   uint8
}

// MaxADTSFrame is the largest frame the 13-bit ADTS length field can describe.
const MaxADTSFrame = 1<<13 - 1 - 7

func ParseASC(b []byte) (*AACConfig, error) {
	var asc mpeg4audio.AudioSpecificConfig
	if err := asc.Unmarshal(b); err != nil {
		return nil, err
	}
	// ADTS signals the core AAC-LC layer; SBR/PS decoders find their extension in-band.
	hdr, err := mpeg4audio.ADTSPackets{{Type: asc.Type, SampleRate: asc.SampleRate, ChannelConfig: asc.ChannelConfig}}.Marshal()
	if err != nil {
		return nil, err
	}
	c := &AACConfig{SampleRate: asc.SampleRate, Channels: asc.ChannelConfig}
	copy(c.adts[:], hdr)
	return c, nil
}

// AppendADTS appends one raw AAC frame with its ADTS header.
func (c *AACConfig) AppendADTS(dst, frame []byte) []byte {
	n := len(frame) + 7
	h := c.adts
	h[3] = h[3]&0xfc | byte(n>>11)
	h[4] = byte(n >> 3)
	h[5] = h[5]&0x1f | byte(n&7)<<5
	return append(append(dst, h[:]...), frame...)
}
