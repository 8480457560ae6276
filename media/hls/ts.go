package hls

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
	pidVideo uint16 = 0x0100
	pidAudio uint16 = 0x0101
)

const (
	streamIDVideo uint8 = 0xe0
	streamIDAudio uint8 = 0xc0
	tsPacketSize        = astits.MpegTsPacketSize
)

// TSState is the MPEG-TS state one segment hands to the next. A cut marker carries it so
// that a follower joining mid-stream continues the leader's counters and writes the same
// bytes. Counters are -1 before the first packet on their PID.
type TSState struct {
	VideoCC, AudioCC int8 // continuity counter of the last packet on the PID
	PATCC, PMTCC     int8
	PMTVersion       int8 // version_number the next PMT will carry
}

// noTS is the state of a muxer that has written nothing.
var noTS = TSState{-1, -1, -1, -1, -1}

// tsMux is one astits muxer for the life of the stream, writing into whichever segment
// buffer is current so continuity counters run on across segments. It mirrors the state
// astits keeps private (read back from the packets it wrote) so that it can be handed to
// another node and reproduced there.
type tsMux struct {
	mux   *astits.Muxer
	dst   *bytes.Buffer // the current segment, or scratch between segments
	video bool          // elementary streams in the PMT
	audio bool

	last       TSState // as written; PMTVersion is the version of the last PMT written
	dirty      bool    // the PMT changed since it was last written: the next one gets a new version
	needTables bool    // no PAT/PMT in the current segment yet
	scratch    bytes.Buffer

	// Reused for every PES: WriteData copies the payload into packets and keeps nothing.
	data     astits.MuxerData
	pes      astits.PESData
	hdr      astits.PESHeader
	opt      astits.PESOptionalHeader
	af       astits.PacketAdaptationField
	pts, dts astits.ClockReference
	pcr      astits.ClockReference
	dummy    [1]byte
}

func newTSMux() *tsMux {
	x := &tsMux{last: noTS}
	x.dst = &x.scratch
	// No periodic tables: they would depend on how many PES came before, which a node
	// joining mid-stream cannot know. PAT/PMT go out at each segment start and before
	// each keyframe instead. (The counter starts at the period and wraps negative.)
	x.mux = astits.NewMuxer(context.Background(), x, astits.MuxerOptTablesRetransmitPeriod(math.MaxInt))
	x.data.PES = &x.pes
	x.pes.Header = &x.hdr
	x.hdr.OptionalHeader = &x.opt
	return x
}

// Write is where astits puts its packets.
func (x *tsMux) Write(p []byte) (int, error) { return x.dst.Write(p) }

// begin directs output to a new segment, which must start with PAT/PMT.
func (x *tsMux) begin(dst *bytes.Buffer) {
	x.dst = dst
	x.needTables = true
}

// end closes the current segment (writePES recorded the counters it left behind).
func (x *tsMux) end() {
	x.dst = &x.scratch
}

func (x *tsMux) pcrPID() uint16 {
	if x.video {
		return pidVideo
	}
	return pidAudio
}

// state is what a segment starting now inherits.
func (x *tsMux) state() TSState {
	s := x.last
	s.PMTVersion = x.nextPMTVersion()
	return s
}

func (x *tsMux) nextPMTVersion() int8 {
	if !x.dirty {
		return x.last.PMTVersion
	}
	return (x.last.PMTVersion + 1) & 0x1f // -1 (none yet) becomes 0
}

// setStreams makes the PMT list exactly the given elementary streams. Streams are always
// (re-)added video first, so the PMT does not depend on the order tracks appeared in;
// re-added streams get their counters back.
func (x *tsMux) setStreams(video, audio bool) {
	if video == x.video && audio == x.audio {
		return
	}
	before := x.last
	if x.video {
		_ = x.mux.RemoveElementaryStream(pidVideo)
	}
	if x.audio {
		_ = x.mux.RemoveElementaryStream(pidAudio)
	}
	x.video, x.audio = video, audio
	x.last.VideoCC, x.last.AudioCC = -1, -1
	if video {
		_ = x.mux.AddElementaryStream(astits.PMTElementaryStream{ElementaryPID: pidVideo, StreamType: astits.StreamTypeH264Video})
	}
	if audio {
		_ = x.mux.AddElementaryStream(astits.PMTElementaryStream{ElementaryPID: pidAudio, StreamType: astits.StreamTypeAACAudio})
	}
	if video || audio {
		x.mux.SetPCRPID(x.pcrPID())
	}
	x.dirty = true
	x.syncStreams(before)
}

// sync brings the counters to target by writing throwaway packets to scratch; false if
// it cannot (target is behind a state we already passed, or lists another stream set).
func (x *tsMux) sync(target TSState) bool {
	return x.syncStreams(target) && x.syncTables(target)
}

func (x *tsMux) syncStreams(target TSState) bool {
	ok := true
	for _, s := range []struct {
		on     bool
		pid    uint16
		id     uint8
		cc     *int8
		target int8
	}{
		{x.video, pidVideo, streamIDVideo, &x.last.VideoCC, target.VideoCC},
		{x.audio, pidAudio, streamIDAudio, &x.last.AudioCC, target.AudioCC},
	} {
		if !s.on {
			continue
		}
		// A one-byte PES is one packet: each write advances the counter by one.
		for i := 0; i < 16 && *s.cc != s.target; i++ {
			x.hdr.StreamID = s.id
			x.opt = astits.PESOptionalHeader{MarkerBits: 2}
			x.data.PID, x.data.AdaptationField, x.pes.Data = s.pid, nil, x.dummy[:]
			if _, err := x.mux.WriteData(&x.data); err != nil {
				return false
			}
			x.observeScratch()
		}
		ok = ok && *s.cc == s.target
	}
	return ok
}

func (x *tsMux) syncTables(target TSState) bool {
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

func (x *tsMux) observeScratch() {
	x.observe(x.scratch.Bytes())
	x.scratch.Reset()
}

// observe records the counters and PMT version of the packets in b.
func (x *tsMux) observe(b []byte) {
	for ; len(b) >= tsPacketSize; b = b[tsPacketSize:] {
		pid := uint16(b[1]&0x1f)<<8 | uint16(b[2])
		cc := int8(b[3] & 0x0f)
		switch pid {
		case pidVideo:
			x.last.VideoCC = cc
		case pidAudio:
			x.last.AudioCC = cc
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

// writePES writes one PES into the current segment. pts and dts are 33-bit 90 kHz
// values; key marks a random access point.
func (x *tsMux) writePES(pid uint16, pts, dts int64, key bool, payload []byte) error {
	start := x.dst.Len()
	defer func() { x.observe(x.dst.Bytes()[start:]) }() // while the packets are in cache
	pcr := pid == x.pcrPID()
	// astits writes PAT/PMT itself before a random access point on the PCR PID.
	forced := key && pcr
	if x.needTables && !forced {
		if _, err := x.mux.WriteTables(); err != nil {
			return err
		}
	}
	if x.needTables || forced {
		x.dirty = false
	}
	x.needTables = false

	x.data.PID = pid
	x.data.AdaptationField = nil
	if pcr || key {
		x.af = astits.PacketAdaptationField{RandomAccessIndicator: key, HasPCR: pcr}
		if pcr {
			x.pcr.Base = dts
			x.af.PCR = &x.pcr
		}
		x.data.AdaptationField = &x.af
	}
	x.hdr.StreamID = streamIDAudio
	if pid == pidVideo {
		x.hdr.StreamID = streamIDVideo
	}
	x.opt = astits.PESOptionalHeader{MarkerBits: 2, DataAlignmentIndicator: true, PTSDTSIndicator: astits.PTSDTSIndicatorOnlyPTS}
	x.pts.Base = pts
	x.opt.PTS = &x.pts
	if dts != pts {
		x.dts.Base = dts
		x.opt.DTS = &x.dts
		x.opt.PTSDTSIndicator = astits.PTSDTSIndicatorBothPresent
	}
	x.pes.Data = payload
	_, err := x.mux.WriteData(&x.data)
	return err
}

// clock90 converts milliseconds to the 33-bit 90 kHz clock of PES timestamps. Unsigned
// multiplication wraps modulo 2^64, a multiple of 2^33, so any int64 input is safe.
func clock90(ms int64) int64 {
	return int64(uint64(ms) * 90 & (1<<33 - 1))
}
