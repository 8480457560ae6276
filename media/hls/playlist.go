package hls

import (
	"bytes"
	"os"
	"time"

	"github.com/grafov/m3u8"
)

// Playlist returns a copy of the media playlist; false until a segment is complete.
func (m *Muxer) Playlist() ([]byte, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.playlist == nil {
		return nil, false
	}
	return bytes.Clone(m.playlist), true
}

// Segment returns a segment by its playlist name, e.g. "12.ts", and release, to call
// when done with the bytes: until then its buffer is not reused for a later segment.
// The bytes are shared and must not be modified.
func (m *Muxer) Segment(name string) (data []byte, release func(), ok bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, s := range m.segs {
		if s.name == name {
			s.readers.Add(1)
			return s.data, s.release, true
		}
	}
	return nil, nil, false
}

// dropWindow forgets the playlist and every segment, and deletes their files.
func (m *Muxer) dropWindow() {
	m.mu.Lock()
	segs, closed := m.segs, m.closed
	m.segs, m.win, m.pl, m.playlist = nil, nil, nil, nil
	m.mu.Unlock()
	if m.cfg.Dir == "" {
		return
	}
	for _, s := range segs {
		m.removeFile(s.name)
	}
	m.removeFile(m.cfg.PlaylistFile)
	if closed {
		os.Remove(m.cfg.Dir) // the stream's own directory, once empty; others may share its parent
	}
}

// publishEnded publishes the segments closed since the last call.
func (m *Muxer) publishEnded() {
	for i, s := range m.ended {
		m.publish(s)
		m.ended[i] = nil
	}
	m.ended = m.ended[:0]
}

// publish adds a finished segment to the playlist and the store, then mirrors both to Dir.
func (m *Muxer) publish(s *segment) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	if n := len(m.win); n > 0 && m.win[n-1].seq+1 != s.seq {
		m.win, m.pl = nil, nil // a gap in numbering: start the playlist over
	}
	if m.pl == nil {
		m.pl, _ = m3u8.NewMediaPlaylist(uint(m.cfg.Window), uint(m.cfg.Window))
	}
	// Slide, not Append: Append past the window keeps listing the oldest segments.
	m.pl.Slide(m.cfg.URIPrefix+s.name, float64(s.durMS)/1000, "")
	if s.disc {
		_ = m.pl.SetDiscontinuity()
	}
	m.win = append(m.win, s)
	if len(m.win) > m.cfg.Window {
		m.win = append(m.win[:0], m.win[1:]...)
	}
	m.pl.SeqNo = m.win[0].seq
	// m3u8 does not advance EXT-X-DISCONTINUITY-SEQUENCE when a discontinuity slides out.
	m.pl.DiscontinuitySeq = m.win[0].dseq
	// The leader's running maximum (carried in markers), not m3u8's, so followers agree.
	m.pl.TargetDuration = float64(m.target)
	// SetDiscontinuity and field writes leave m3u8's cached text in place.
	m.pl.ResetCache()
	// Encode returns m3u8's internal buffer, overwritten by the next change.
	m.playlist = bytes.Clone(m.pl.Encode().Bytes())
	playlist := m.playlist

	m.segs = append(m.segs, s)
	var expired []*segment
	if n := len(m.segs) - m.cfg.Window - keepExpired; n > 0 {
		expired = append(expired, m.segs[:n]...)
		m.segs = append(m.segs[:0], m.segs[n:]...)
	}
	// No Segment call can find an expired segment any more (it looks under mu): one that
	// nobody holds now never will be, and its buffer can carry a later segment.
	for _, e := range expired {
		if e.readers.Load() == 0 && len(m.spare) < maxSpare {
			m.spare = append(m.spare, e.buf)
		}
		e.data, e.buf = nil, nil
	}
	m.mu.Unlock()

	if m.cfg.OnSegment != nil && !m.cfg.Follow {
		m.cfg.OnSegment(s.seq, m.cfg.URIPrefix+s.name, time.Duration(s.durMS)*time.Millisecond)
	}
	if m.cfg.Dir == "" {
		return
	}
	m.makeDir()
	m.writeFile(s.name, s.data)
	m.writeFile(m.cfg.PlaylistFile, playlist)
	for _, e := range expired {
		m.removeFile(e.name)
	}
}
