package hls

import (
	"bytes"

	"peer/media/flv"
)

// SetFollow switches the muxer between leader (decides cuts) and follower (cuts at the
// leader's markers). A follower promoted to leader continues the numbering, TS counters
// and discontinuity count where the last marker left them, so players see one
// continuous playlist across a master failover. Call it from the writing goroutine or
// while no tag is being written.
func (m *Muxer) SetFollow(follow bool) {
	if m.cfg.Follow == follow {
		return
	}
	if !follow && m.asleep && len(m.held) > 0 {
		// Promoted while asleep: package the segment in flight from the tags held since
		// the last marker, as the follower it still is, and continue it as the leader.
		// Before, they were dropped: the new leader's playlist had a hole of up to a
		// segment where the failover happened.
		m.Wake()
	}
	m.cfg.Follow = follow
	switch {
	case follow:
	case m.asleep:
		// Promoted while asleep with nothing held: number on from the last marker. The TS
		// counters did not follow the segment in progress, so the first segment is a
		// discontinuity.
		m.wakeUp()
		if c := m.lastCut; m.hasCut {
			m.nextSeq, m.discCount = c.Seq+1, c.DiscSeq
			m.adoptTarget(c.Target)
			if c.Discontinuity {
				m.discCount++
			}
		}
		m.discPending = true
	case m.cur != nil:
		m.nextSeq = m.cur.seq + 1
		m.discCount = m.cur.dseq
		if m.cur.disc {
			m.discCount++
		}
	}
}

// maxHeldBytes bounds what a sleeping follower holds: its oldest segments are given up
// first, and a segment in progress longer than that too (Wake then waits for the next
// marker).
const maxHeldBytes = 16 << 20

// Sleep stops a follower's packaging while nobody asks for its HLS: the playlist and
// segments are dropped, and until Wake (or promotion) Mux keeps only the codec
// configuration, the last cut marker and the tags since it. A leader never sleeps: its
// cut decisions need the TS counters of what it packaged.
func (m *Muxer) Sleep() {
	if m.asleep || !m.cfg.Follow || m.stopped {
		return
	}
	m.asleep = true
	m.cur = nil
	clear(m.ended)
	m.ended = m.ended[:0]
	m.audio, m.audioFrames = m.audio[:0], 0
	m.ts.End()
	m.target = 0 // the next playlist, when woken, takes the leader's target again
	m.dropWindow()
}

// Wake resumes a sleeping follower's packaging with the segment in progress: the held
// tags from its marker on are packaged now, so the segment is published at the next
// marker, not the one after.
func (m *Muxer) Wake() {
	if !m.asleep {
		return
	}
	held := m.wakeUp()
	for _, t := range held {
		m.Mux(t)
	}
	clear(held)
}

// wakeUp leaves the sleeping state and returns the held tags.
func (m *Muxer) wakeUp() []*flv.Tag {
	held := m.held
	m.asleep, m.held, m.heldBytes, m.heldCuts = false, nil, 0, nil
	return held
}

// hold is Mux while asleep: configurations are applied, a marker restarts the held tags.
func (m *Muxer) hold(t *flv.Tag) {
	switch {
	case t.IsSequenceHeader() && t.Type == flv.TypeVideo:
		m.writeVideo(t)
	case t.IsSequenceHeader() && t.Type == flv.TypeAudio:
		m.writeAudio(t)
	case t.Type == flv.TypeScript:
		if c, ok := ParseCutMarker(t); ok && (!m.hasCut || c.Seq > m.lastCut.Seq) {
			if m.hasCut && c.Seq != m.lastCut.Seq+1 {
				m.dropHeld(len(m.heldCuts)) // a marker went missing: what is held is no segment
			}
			m.lastCut, m.hasCut = c, true
			m.heldCuts = append(m.heldCuts, len(m.held))
			m.held = append(m.held, t)
			m.heldBytes += len(t.Raw)
			if len(m.heldCuts) > wakeSegments+1 {
				m.dropHeld(1)
			}
		}
	case len(m.held) == 0:
	default:
		for len(m.heldCuts) > 0 && m.heldBytes+len(t.Raw) > maxHeldBytes {
			m.dropHeld(1)
		}
		if len(m.held) > 0 {
			m.held = append(m.held, t)
			m.heldBytes += len(t.Raw)
		}
	}
}

// wakeSegments is how many complete segments a sleeping follower holds besides the one in
// progress, so the first playlist it serves when woken lists that many: hls.js and
// Safari start three target durations from the end, and with one segment listed they
// started at the live edge and rebuffered.
const wakeSegments = 3

// dropHeld forgets the oldest n segments held while asleep.
func (m *Muxer) dropHeld(n int) {
	end := len(m.held)
	if n < len(m.heldCuts) {
		end = m.heldCuts[n]
	}
	for _, t := range m.held[:end] {
		m.heldBytes -= len(t.Raw)
	}
	rest := copy(m.held, m.held[end:])
	clear(m.held[rest:])
	m.held = m.held[:rest]
	cuts := copy(m.heldCuts, m.heldCuts[n:])
	m.heldCuts = m.heldCuts[:cuts]
	for i := range m.heldCuts {
		m.heldCuts[i] -= end
	}
}

// IsCutMarkerData is IsCutMarker on a script tag's body.
func IsCutMarkerData(data []byte) bool { return bytes.HasPrefix(data, cutPrefix) }
