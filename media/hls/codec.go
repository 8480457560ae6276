package hls

import (
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

var errShort = errors.New("truncated")

// avcConfig is what an AVC sequence header (avcC record) gives the packager.
type avcConfig struct {
	lengthSize int    // bytes of each NALU length prefix in frames
	paramSets  []byte // SPS and PPS in Annex-B, inserted before IDR pictures
	width      int
	height     int
}

// parseAVCC reads an AVCDecoderConfigurationRecord (ISO 14496-15 5.3.3.1).
func parseAVCC(rec []byte) (*avcConfig, error) {
	if len(rec) < 6 || rec[0] != 1 {
		return nil, errors.New("not an avcC record")
	}
	c := &avcConfig{lengthSize: int(rec[4]&3) + 1}
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
	c.width, c.height = s.Width(), s.Height()
	return c, nil
}

// aud is an access unit delimiter (primary_pic_type 7: any slice type); HLS wants one at
// the start of every video PES.
var aud = []byte{0, 0, 0, 1, byte(h264.NALUTypeAccessUnitDelimiter), 0xf0}

// appendAnnexB converts one AVCC access unit to Annex-B: an AUD, SPS/PPS when the unit
// has an IDR slice but no SPS of its own, then the NAL units (minus any AUD of their own).
func appendAnnexB(dst []byte, c *avcConfig, au []byte) ([]byte, error) {
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

// aacConfig holds the ADTS header built from an AudioSpecificConfig, with a zero frame
// length to be filled in per frame.
type aacConfig struct {
	adts       [7]byte
	sampleRate int
	channels   uint8
}

// maxADTSFrame is the largest frame the 13-bit ADTS length field can describe.
const maxADTSFrame = 1<<13 - 1 - 7

func parseASC(b []byte) (*aacConfig, error) {
	var asc mpeg4audio.AudioSpecificConfig
	if err := asc.Unmarshal(b); err != nil {
		return nil, err
	}
	// ADTS signals the core AAC-LC layer; SBR/PS decoders find their extension in-band.
	hdr, err := mpeg4audio.ADTSPackets{{Type: asc.Type, SampleRate: asc.SampleRate, ChannelConfig: asc.ChannelConfig}}.Marshal()
	if err != nil {
		return nil, err
	}
	c := &aacConfig{sampleRate: asc.SampleRate, channels: asc.ChannelConfig}
	copy(c.adts[:], hdr)
	return c, nil
}

// appendADTS appends one raw AAC frame with its ADTS header.
func (c *aacConfig) appendADTS(dst, frame []byte) []byte {
	n := len(frame) + 7
	h := c.adts
	h[3] = h[3]&0xfc | byte(n>>11)
	h[4] = byte(n >> 3)
	h[5] = h[5]&0x1f | byte(n&7)<<5
	return append(append(dst, h[:]...), frame...)
}

// FLV codec names, for the line that says why a track is not packaged.
var (
	videoCodecs = map[uint8]string{2: "Sorenson H.263", 3: "Screen Video", 4: "On2 VP6", 5: "On2 VP6 alpha", 6: "Screen Video v2", 12: "HEVC (non-standard id 12)"}
	audioCodecs = map[uint8]string{0: "linear PCM", 1: "ADPCM", 2: "MP3", 3: "linear PCM LE", 4: "Nellymoser 16 kHz", 5: "Nellymoser 8 kHz", 6: "Nellymoser", 7: "G.711 A-law", 8: "G.711 mu-law", 9: "Enhanced RTMP audio", 11: "Speex", 14: "MP3 8 kHz", 15: "device-specific"}
)

func codecName(names map[uint8]string, id uint8) string {
	if n, ok := names[id]; ok {
		return n
	}
	return fmt.Sprintf("codec id %d", id)
}
