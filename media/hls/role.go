package hls

import "bytes"

// SetFollow switches the muxer between leader (decides cuts) and follower (cuts at the
// leader's markers). A follower promoted to leader continues the numbering, TS counters
// and discontinuity count where the last marker left them, so players see one
// continuous playlist across a master failover. Call it from the writing goroutine or
// while no tag is being written.
func (m *Muxer) SetFollow(follow bool) {
	if m.cfg.Follow == follow {
		return
	}
	m.cfg.Follow = follow
	if !follow && m.cur != nil {
		m.nextSeq = m.cur.seq + 1
		m.discCount = m.cur.dseq
		if m.cur.disc {
			m.discCount++
		}
	}
}

// IsCutMarkerData is IsCutMarker on a script tag's body.
func IsCutMarkerData(data []byte) bool { return bytes.HasPrefix(data, cutPrefix) }
