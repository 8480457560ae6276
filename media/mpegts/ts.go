// Package mpegts is MPEG-TS (ISO 13818-1) output for H.264 and AAC: a Writer that
// carries one stream's transport stream across the buffers it is given (continuity
// counters and tables run on, and their State can be handed to another writer), and the
// codec conversions the format needs (AVCC to Annex-B, ADTS framing). It is protocol
// code that knows no stream, cut or playlist: a packager (media/hls) decides where one
// segment's buffer ends and the next begins. It may import only the standard library and
// codec libraries (astits, mediacommon), nothing of peer.
package mpegts

import (
	"bytes"
	"context"
	"math"

	"github.com/asticode/go-astits"
)

// Fixed PIDs: astits's automatic PIDs start at 0 (its nextPID is never initialized).
const (
	pidPAT   uint16 = 0x0000
	pidPMT   uint16 = 0x1000 // astits's default PMT PID
	PIDVideo uint16 = 0x0100
	PIDAudio uint16 = 0x0101
)

const (
	streamIDVideo uint8 = 0xe0
	streamIDAudio uint8 = 0xc0
	PacketSize          = astits.MpegTsPacketSize // bytes of a TS packet
)

// State is the MPEG-TS state one segment hands to the next. Handed to another Writer
// (Sync), it lets that one continue these counters and write the same bytes (an HLS
// follower joining mid-stream). Counters are -1 before the first packet on their PID.
type State struct {
	VideoCC, AudioCC int8 // continuity counter of the last packet on the PID
	PATCC, PMTCC     int8
	PMTVersion       int8 // version_number the next PMT will carry
}

// NoState is the state of a muxer that has written nothing.
var NoState = State{-1, -1, -1, -1, -1}

// Writer writes one stream's MPEG-TS for the life of the stream into whichever segment
// buffer is current, so continuity counters run on across segments. astits writes the
// tables (PAT/PMT, a few per segment); the PES packets of every frame are written here
// (WritePES), several times faster than astits, on the publisher's goroutine. It keeps the
// counters, and mirrors the tables' state astits keeps private (read back from the
// packets it wrote), so that the state can be handed to another node and reproduced there.
type Writer struct {
	mux   *astits.Muxer
	dst   *bytes.Buffer // the current segment, or scratch between segments
	video bool          // elementary streams in the PMT
	audio bool

	last       State // as written; PMTVersion is the version of the last PMT written
	dirty      bool  // the PMT changed since it was last written: the next one gets a new version
	needTables bool  // no PAT/PMT in the current segment yet
	scratch    bytes.Buffer
}

func NewWriter() *Writer {
	x := &Writer{last: NoState}
	x.dst = &x.scratch
	// No periodic tables: PAT/PMT go out at each segment start and before each keyframe
	// (writePES asks for them; astits's own schedule counts WriteData calls, not made).
	x.mux = astits.NewMuxer(context.Background(), x, astits.MuxerOptTablesRetransmitPeriod(math.MaxInt))
	return x
}

// Video and Audio report the elementary streams in the PMT (SetStreams).
func (x *Writer) Video() bool { return x.video }
func (x *Writer) Audio() bool { return x.audio }

// Write is where astits puts its packets.
func (x *Writer) Write(p []byte) (int, error) { return x.dst.Write(p) }

// Begin directs output to a new segment, which must start with PAT/PMT.
func (x *Writer) Begin(dst *bytes.Buffer) {
	x.dst = dst
	x.needTables = true
}

// End closes the current segment (writePES recorded the counters it left behind).
func (x *Writer) End() {
	x.dst = &x.scratch
}

func (x *Writer) pcrPID() uint16 {
	if x.video {
		return PIDVideo
	}
	return PIDAudio
}

// State is what a segment starting now inherits.
func (x *Writer) State() State {
	s := x.last
	s.PMTVersion = x.nextPMTVersion()
	return s
}

func (x *Writer) nextPMTVersion() int8 {
	if !x.dirty {
		return x.last.PMTVersion
	}
	return (x.last.PMTVersion + 1) & 0x1f // -1 (none yet) becomes 0
}

// SetStreams makes the PMT list exactly the given elementary streams. Streams are always
// (re-)added video first, so the PMT does not depend on the order tracks appeared in;
// re-added streams get their counters back.
func (x *Writer) SetStreams(video, audio bool) {
	if video == x.video && audio == x.audio {
		return
	}
	if x.video {
		_ = x.mux.RemoveElementaryStream(PIDVideo)
	}
	if x.audio {
		_ = x.mux.RemoveElementaryStream(PIDAudio)
	}
	x.video, x.audio = video, audio
	// A stream that stays keeps its counter; one that leaves starts over if it returns.
	if !video {
		x.last.VideoCC = -1
	}
	if !audio {
		x.last.AudioCC = -1
	}
	if video {
		_ = x.mux.AddElementaryStream(astits.PMTElementaryStream{ElementaryPID: PIDVideo, StreamType: astits.StreamTypeH264Video})
	}
	if audio {
		_ = x.mux.AddElementaryStream(astits.PMTElementaryStream{ElementaryPID: PIDAudio, StreamType: astits.StreamTypeAACAudio})
	}
	if video || audio {
		x.mux.SetPCRPID(x.pcrPID())
	}
	x.dirty = true
}

// Sync brings the counters to target: the streams' directly, the tables' by writing
// throwaway tables to scratch; false if it cannot (target lists another stream set).
func (x *Writer) Sync(target State) bool {
	if x.video {
		x.last.VideoCC = target.VideoCC
	}
	if x.audio {
		x.last.AudioCC = target.AudioCC
	}
	return x.syncTables(target)
}

func (x *Writer) syncTables(target State) bool {
	if !x.video && !x.audio {
		return target.PATCC == x.last.PATCC && target.PMTCC == x.last.PMTCC
	}
	// Each PAT+PMT write advances both table counters; a PMT change (SetPCRPID marks one)
	// before a write also advances the version. 64 writes cover every combination.
	for range 64 {
		if x.nextPMTVersion() != target.PMTVersion && !x.dirty {
			x.mux.SetPCRPID(x.pcrPID())
			x.dirty = true
		}
		if x.last.PATCC == target.PATCC && x.last.PMTCC == target.PMTCC && x.nextPMTVersion() == target.PMTVersion {
			return true
		}
		if _, err := x.mux.WriteTables(); err != nil {
			return false
		}
		x.dirty = false
		x.observeScratch()
	}
	return false
}

func (x *Writer) observeScratch() {
	x.observe(x.scratch.Bytes())
	x.scratch.Reset()
}

// observe records the counters and PMT version of the table packets in b.
func (x *Writer) observe(b []byte) {
	for ; len(b) >= PacketSize; b = b[PacketSize:] {
		pid := uint16(b[1]&0x1f)<<8 | uint16(b[2])
		cc := int8(b[3] & 0x0f)
		switch pid {
		case pidPAT:
			x.last.PATCC = cc
		case pidPMT:
			x.last.PMTCC = cc
			if v, ok := pmtVersion(b); ok {
				x.last.PMTVersion = v
			}
		}
	}
}

// pmtVersion reads version_number from a packet starting a PMT section.
func pmtVersion(p []byte) (int8, bool) {
	off := 4
	if p[3]&0x20 != 0 { // adaptation field present
		off += 1 + int(p[4])
	}
	if p[1]&0x40 == 0 || off >= len(p) {
		return 0, false
	}
	off += 1 + int(p[off]) // pointer_field
	// table_id(1) section_length(2) program_number(2) then version/current_next
	if off+5 >= len(p) {
		return 0, false
	}
	return int8(p[off+5]>>1) & 0x1f, true
}

// WritePES writes one PES into the current segment, with PAT/PMT ahead of it at a
// segment's start and at a keyframe on the PCR PID. pts and dts are 33-bit 90 kHz values;
// key marks a random access point. The packets are those astits's WriteData makes
// (TestPESMatchesAstits holds them byte for byte): the first carries the adaptation field
// (random access, PCR on the PCR PID) and the PES header, and the last is filled with
// adaptation-field stuffing, as PES payloads of unspecified length need.
func (x *Writer) WritePES(pid uint16, pts, dts int64, key bool, payload []byte) error {
	pcr := pid == x.pcrPID()
	if x.needTables || key && pcr {
		start := x.dst.Len()
		if _, err := x.mux.WriteTables(); err != nil {
			return err
		}
		x.observe(x.dst.Bytes()[start:])
		x.dirty = false
	}
	x.needTables = false
	if len(payload) == 0 {
		return nil
	}

	cc, id := &x.last.AudioCC, streamIDAudio
	if pid == PIDVideo {
		cc, id = &x.last.VideoCC, streamIDVideo
	}
	var hdrBuf [19]byte
	hdr := appendPESHeader(hdrBuf[:0], id, pts, dts, len(payload))

	b := x.dst.AvailableBuffer()
	if n := (len(payload)/(PacketSize-4) + 2) * PacketSize; cap(b) < n {
		x.dst.Grow(n)
		b = x.dst.AvailableBuffer()
	}
	for first := true; len(payload) > 0; first = false {
		*cc = (*cc + 1) & 0x0f
		var afFlags byte
		afBody := 0 // adaptation field bytes after its length byte, before stuffing
		if first && (key || pcr) {
			if key {
				afFlags |= 0x40
			}
			afBody = 1
			if pcr {
				afFlags |= 0x10
				afBody += 6
			}
		}
		room := PacketSize - 4 // after the packet header
		if afBody > 0 {
			room -= 1 + afBody
		}
		head := 0
		if first {
			head = len(hdr)
		}
		n := min(len(payload), room-head)
		stuff := room - head - n
		hasAF := afBody > 0 || stuff > 0

		b0 := byte(pid >> 8 & 0x1f)
		if first {
			b0 |= 0x40 // payload_unit_start_indicator
		}
		b3 := 0x10 | byte(*cc) // payload present
		if hasAF {
			b3 |= 0x20
		}
		b = append(b, 0x47, b0, byte(pid), b3)
		switch {
		case afBody > 0:
			b = append(b, byte(afBody+stuff), afFlags)
			if pcr {
				b = appendPCR(b, dts)
			}
			b = appendStuffing(b, stuff)
		case stuff == 1:
			b = append(b, 0) // an empty adaptation field
		case stuff > 1:
			b = append(b, byte(stuff-1), 0)
			b = appendStuffing(b, stuff-2)
		}
		if first {
			b = append(b, hdr...)
		}
		b = append(b, payload[:n]...)
		payload = payload[n:]
	}
	x.dst.Write(b)
	return nil
}

// appendPESHeader: start code, stream id, length (0, unbounded, for video and for audio
// over 64 KiB), the optional header with data alignment, and PTS (and DTS if it differs).
func appendPESHeader(b []byte, id uint8, pts, dts int64, payloadLen int) []byte {
	optLen, flags := 5, byte(0x80)
	if dts != pts {
		optLen, flags = 10, 0xc0
	}
	length := 0
	if id&0xf0 != 0xe0 { // not a video stream
		if length = payloadLen + 3 + optLen; length > 0xffff {
			length = 0
		}
	}
	b = append(b, 0, 0, 1, id, byte(length>>8), byte(length), 0x84, flags, byte(optLen))
	if dts != pts {
		return appendTimestamp(appendTimestamp(b, 0x3, pts), 0x1, dts)
	}
	return appendTimestamp(b, 0x2, pts)
}

// appendTimestamp writes a 33-bit PTS or DTS with its 4-bit prefix and marker bits.
func appendTimestamp(b []byte, prefix byte, ts int64) []byte {
	return append(b, prefix<<4|byte(ts>>29)&0x0e|1, byte(ts>>22), byte(ts>>14)|1, byte(ts>>7), byte(ts<<1)|1)
}

// appendPCR writes a program clock reference: 33-bit base, 6 reserved bits, extension 0.
func appendPCR(b []byte, base int64) []byte {
	return append(b, byte(base>>25), byte(base>>17), byte(base>>9), byte(base>>1), byte(base<<7)|0x7e, 0)
}

func appendStuffing(b []byte, n int) []byte {
	for range n {
		b = append(b, 0xff)
	}
	return b
}

// Clock90 converts milliseconds to the 33-bit 90 kHz clock of PES timestamps. Unsigned
// multiplication wraps modulo 2^64, a multiple of 2^33, so any int64 input is safe.
func Clock90(ms int64) int64 {
	return int64(uint64(ms) * 90 & (1<<33 - 1))
}
