package hls

import (
	"bytes"
	"encoding/binary"
	"math"
	"peer/media/mpegts"

	"peer/media/flv"
)

// Cut is a leader's decision to start segment Seq before a given tag. It travels in-band
// as an AMF0 "onHLSCut" script tag (CutMarker) so every follower cuts at the same tag and,
// with the state below, writes the same segment bytes and playlist as the leader even if
// it joined mid-stream.
type Cut struct {
	Seq           uint64       // media sequence number of the segment starting here
	Discontinuity bool         // the segment starts with EXT-X-DISCONTINUITY
	DiscSeq       uint64       // discontinuities before this segment (EXT-X-DISCONTINUITY-SEQUENCE)
	Target        int64        // the playlist's TARGETDURATION, in seconds; 0 until the first segment closes
	Cont          bool         // the segment starts mid-GOP and continues the previous one's video
	TS            mpegts.State // MPEG-TS counters the segment continues from
}

// cutPrefix is the AMF0 string "onHLSCut" that opens a marker's data.
var cutPrefix = []byte{0x02, 0, 8, 'o', 'n', 'H', 'L', 'S', 'C', 'u', 't'}

// AMF0 type markers used by the marker object.
const (
	amfNumber    = 0x00
	amfBoolean   = 0x01
	amfObject    = 0x03
	amfObjectEnd = 0x09
)

// CutMarker builds the script tag announcing c, to be sent ahead of the tag at timeMS it
// cuts before. Numbers are AMF0 doubles, exact up to 2^53.
func CutMarker(c Cut, timeMS int64) *flv.Tag {
	b := make([]byte, 0, 160)
	b = append(b, cutPrefix...)
	b = append(b, amfObject)
	b = amfNum(b, "seq", float64(c.Seq))
	b = amfBool(b, "disc", c.Discontinuity)
	b = amfNum(b, "dseq", float64(c.DiscSeq))
	b = amfNum(b, "target", float64(c.Target))
	b = amfBool(b, "cont", c.Cont)
	b = amfNum(b, "vcc", float64(c.TS.VideoCC))
	b = amfNum(b, "acc", float64(c.TS.AudioCC))
	b = amfNum(b, "patcc", float64(c.TS.PATCC))
	b = amfNum(b, "pmtcc", float64(c.TS.PMTCC))
	b = amfNum(b, "pmtver", float64(c.TS.PMTVersion))
	b = append(b, 0, 0, amfObjectEnd)
	return flv.NewTag(flv.TypeScript, timeMS, b)
}

// IsCutMarker reports an onHLSCut tag; the stream layer can use it to keep markers away
// from RTMP and HTTP-FLV players.
func IsCutMarker(t *flv.Tag) bool {
	return t.Type == flv.TypeScript && bytes.HasPrefix(t.Data(), cutPrefix)
}

// ParseCutMarker decodes a tag built by CutMarker.
func ParseCutMarker(t *flv.Tag) (Cut, bool) {
	if !IsCutMarker(t) {
		return Cut{}, false
	}
	p := t.Data()[len(cutPrefix):]
	if len(p) < 1 || p[0] != amfObject {
		return Cut{}, false
	}
	p = p[1:]
	c := Cut{TS: mpegts.NoState}
	var hasSeq bool
	for {
		if len(p) < 2 {
			return Cut{}, false
		}
		kl := int(binary.BigEndian.Uint16(p))
		p = p[2:]
		if kl == 0 {
			return c, hasSeq && len(p) >= 1 && p[0] == amfObjectEnd
		}
		if len(p) < kl+1 {
			return Cut{}, false
		}
		key := string(p[:kl])
		typ := p[kl]
		p = p[kl+1:]
		var v float64
		switch {
		case typ == amfNumber && len(p) >= 8:
			v = math.Float64frombits(binary.BigEndian.Uint64(p))
			p = p[8:]
		case typ == amfBoolean && len(p) >= 1:
			if p[0] != 0 {
				v = 1
			}
			p = p[1:]
		default:
			return Cut{}, false
		}
		switch key {
		case "seq":
			c.Seq, hasSeq = uint64(v), true
		case "disc":
			c.Discontinuity = v != 0
		case "dseq":
			c.DiscSeq = uint64(v)
		case "target":
			c.Target = int64(v)
		case "cont":
			c.Cont = v != 0
		case "vcc":
			c.TS.VideoCC = int8(v)
		case "acc":
			c.TS.AudioCC = int8(v)
		case "patcc":
			c.TS.PATCC = int8(v)
		case "pmtcc":
			c.TS.PMTCC = int8(v)
		case "pmtver":
			c.TS.PMTVersion = int8(v)
		}
	}
}

func amfKey(b []byte, k string) []byte {
	return append(binary.BigEndian.AppendUint16(b, uint16(len(k))), k...)
}

func amfNum(b []byte, k string, v float64) []byte {
	return binary.BigEndian.AppendUint64(append(amfKey(b, k), amfNumber), math.Float64bits(v))
}

func amfBool(b []byte, k string, v bool) []byte {
	b = append(amfKey(b, k), amfBoolean, 0)
	if v {
		b[len(b)-1] = 1
	}
	return b
}
