package mpegts

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/asticode/go-astits"
)

// astitsPES is the reference writePES: astits's WriteData, which writes PAT/PMT itself
// before a random access point on the PCR PID.
type astitsPES struct {
	mux        *astits.Muxer
	out        bytes.Buffer
	pcrPID     uint16
	needTables bool
}

func newAstitsPES(video, audio bool) *astitsPES {
	r := &astitsPES{}
	r.mux = astits.NewMuxer(context.Background(), &r.out, astits.MuxerOptTablesRetransmitPeriod(math.MaxInt))
	if video {
		_ = r.mux.AddElementaryStream(astits.PMTElementaryStream{ElementaryPID: PIDVideo, StreamType: astits.StreamTypeH264Video})
		r.pcrPID = PIDVideo
	}
	if audio {
		_ = r.mux.AddElementaryStream(astits.PMTElementaryStream{ElementaryPID: PIDAudio, StreamType: astits.StreamTypeAACAudio})
		if !video {
			r.pcrPID = PIDAudio
		}
	}
	r.mux.SetPCRPID(r.pcrPID)
	return r
}

func (r *astitsPES) write(t *testing.T, pid uint16, pts, dts int64, key bool, payload []byte) {
	pcr := pid == r.pcrPID
	if r.needTables && !(key && pcr) {
		if _, err := r.mux.WriteTables(); err != nil {
			t.Fatal(err)
		}
	}
	r.needTables = false
	var af *astits.PacketAdaptationField
	if pcr || key {
		af = &astits.PacketAdaptationField{RandomAccessIndicator: key, HasPCR: pcr}
		if pcr {
			af.PCR = &astits.ClockReference{Base: dts}
		}
	}
	id := streamIDAudio
	if pid == PIDVideo {
		id = streamIDVideo
	}
	opt := &astits.PESOptionalHeader{MarkerBits: 2, DataAlignmentIndicator: true,
		PTSDTSIndicator: astits.PTSDTSIndicatorOnlyPTS, PTS: &astits.ClockReference{Base: pts}}
	if dts != pts {
		opt.DTS = &astits.ClockReference{Base: dts}
		opt.PTSDTSIndicator = astits.PTSDTSIndicatorBothPresent
	}
	_, err := r.mux.WriteData(&astits.MuxerData{PID: pid, AdaptationField: af,
		PES: &astits.PESData{Header: &astits.PESHeader{StreamID: id, OptionalHeader: opt}, Data: payload}})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPESMatchesAstits: writePES makes astits's packets byte for byte, over payload
// sizes around every packet boundary, keyframes with and without PCR, PTS != DTS,
// timestamps near the 33-bit wrap, counters across many PES and segment starts.
func TestPESMatchesAstits(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{1, 2, 3, 100, 150, 151, 152, 153, 154, 155, 156, 160, 161, 162, 163, 164, 165, 166, 167, 168, 169,
		170, 171, 172, 173, 174, 175, 176, 177, 178, 182, 183, 184, 185, 186, 300, 330, 331, 332, 333, 334, 335, 336, 337,
		338, 339, 340, 341, 342, 343, 344, 345, 346, 347, 348, 349, 350, 351, 352, 353, 354, 355, 356, 357, 358, 359, 360,
		361, 362, 367, 368, 369, 370, 8000, 40000, 65530, 70000}
	for _, tracks := range []struct{ video, audio bool }{{true, true}, {true, false}, {false, true}} {
		x := NewWriter()
		x.SetStreams(tracks.video, tracks.audio)
		var got bytes.Buffer
		x.Begin(&got)
		ref := newAstitsPES(tracks.video, tracks.audio)
		ref.needTables = true
		var pids []uint16
		if tracks.video {
			pids = append(pids, PIDVideo)
		}
		if tracks.audio {
			pids = append(pids, PIDAudio)
		}
		for i := range 3000 {
			if i%97 == 0 { // a segment starts
				x.Begin(&got)
				ref.needTables = true
			}
			pid := pids[rng.IntN(len(pids))]
			n := sizes[rng.IntN(len(sizes))]
			payload := make([]byte, n)
			for j := range payload {
				payload[j] = byte(rng.Uint32())
			}
			dts := rng.Int64N(1 << 33)
			if i%5 == 0 {
				dts = 1<<33 - 1 - rng.Int64N(1000)
			}
			pts := dts
			if rng.IntN(2) == 0 {
				pts = (dts + rng.Int64N(9000)) & (1<<33 - 1)
			}
			key := rng.IntN(4) == 0
			if err := x.WritePES(pid, pts, dts, key, payload); err != nil {
				t.Fatal(err)
			}
			ref.write(t, pid, pts, dts, key, payload)
			if !bytes.Equal(got.Bytes(), ref.out.Bytes()) {
				a, b := got.Bytes(), ref.out.Bytes()
				k := 0
				for k < min(len(a), len(b)) && a[k] == b[k] {
					k++
				}
				t.Fatalf("tracks %+v, PES %d (pid %#x, %d bytes, key %v, pts %d dts %d): output differs at byte %d (packet %d, offset %d); lengths %d vs astits %d",
					tracks, i, pid, n, key, pts, dts, k, k/PacketSize, k%PacketSize, len(a), len(b))
			}
		}
	}
}
