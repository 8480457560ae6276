package hls

import (
	"bytes"
	"math"
	"strconv"
	"testing"
	"time"

	"peer/media/flv"
)

// targetWatch feeds tags to m and checks, at every change of its playlist, that
// TARGETDURATION is want and that every EXTINF rounds to at most it (RFC 8216 4.3.3.1).
type targetWatch struct {
	tb   testing.TB
	m    *Muxer
	want int
	last []byte
	segs map[string][]byte // every segment published, by name
}

func watchTarget(tb testing.TB, m *Muxer, want int) *targetWatch {
	return &targetWatch{tb: tb, m: m, want: want, segs: map[string][]byte{}}
}

func (w *targetWatch) feed(tags []*flv.Tag) {
	w.tb.Helper()
	for _, t := range tags {
		w.m.WriteTag(t)
		p, ok := w.m.Playlist()
		if !ok || bytes.Equal(p, w.last) {
			continue
		}
		w.last = p
		// The text, not m3u8's TargetDuration, which the decoder recomputes from EXTINF.
		if !bytes.Contains(p, []byte("#EXT-X-TARGETDURATION:"+strconv.Itoa(w.want)+"\n")) {
			w.tb.Fatalf("TARGETDURATION is not %d:\n%s", w.want, p)
		}
		for _, s := range decode(w.tb, p).Segments {
			if s != nil && math.Round(s.Duration) > float64(w.want) {
				w.tb.Fatalf("EXTINF %v over TARGETDURATION %d:\n%s", s.Duration, w.want, p)
			}
		}
		recordNewest(w.tb, w.m, nil, w.segs)
	}
}

// after returns tags moved to start dt ms after the last of prev.
func after(prev, tags []*flv.Tag, dt int64) []*flv.Tag {
	return shifted(tags, prev[len(prev)-1].Time+dt-tags[0].Time)
}

// TestTargetFixedThroughLongerGOP: a stream whose GOP grows from 1 s to 4 s mid-stream
// (an encoder's settings changed) keeps TARGETDURATION 2 (2 s fragments): a segment that
// reaches the target without a keyframe is cut at the next frame, the next one continues
// the video, and a follower cuts exactly there (the marker says so) and writes the same
// bytes. The whole playlist decodes without an error. Before, the 4 s segments raised the
// target to 4 mid-stream.
func TestTargetFixedThroughLongerGOP(t *testing.T) {
	short := makeFLVGOP(t, "aac", 6, 25)
	long := makeFLVGOP(t, "aac", 12, 100)
	stream := append(append([]*flv.Tag{}, short...), after(short, long, 40)...)
	cfg := Config{Fragment: 2 * time.Second, Window: 20}
	var out []*flv.Tag
	cfg.OnCut = func(mk *flv.Tag) { out = append(out, mk) }
	leader := New(cfg, nil)
	defer leader.Close()
	lw := watchTarget(t, leader, 2)
	for _, tag := range stream {
		lw.feed([]*flv.Tag{tag})
		out = append(out, tag)
	}
	var forced int
	for _, tag := range out {
		if c, ok := ParseCutMarker(tag); ok && c.Cont {
			forced++
		}
	}
	if forced == 0 {
		t.Fatal("no segment was cut without a keyframe")
	}

	f := New(Config{Fragment: 2 * time.Second, Window: 20, Follow: true}, nil)
	defer f.Close()
	fw := watchTarget(t, f, 2)
	fw.feed(out)
	if len(fw.segs) != len(lw.segs) {
		t.Fatalf("follower made %d segments, the leader %d", len(fw.segs), len(lw.segs))
	}
	for name, b := range lw.segs {
		if !bytes.Equal(b, fw.segs[name]) {
			t.Fatalf("%s differs between leader and follower", name)
		}
	}
	if !bytes.Equal(playlist(t, leader), playlist(t, f)) {
		t.Fatal("playlists differ")
	}
	decodeAll(t, writeOut(t, leader))
}

// TestTargetSurvivesRestart: the publisher of a name restarts (a discontinuity, the
// window survives) with a longer GOP; the playlist keeps its target. Before, the new
// publisher's 4 s segments raised it to 4.
func TestTargetSurvivesRestart(t *testing.T) {
	first := makeFLVGOP(t, "aac", 6, 25)
	second := makeFLVGOP(t, "aac", 12, 100)
	m := New(Config{Fragment: 2 * time.Second, Window: 6}, nil)
	defer m.Close()
	w := watchTarget(t, m, 2)
	w.feed(first)
	m.Discontinuity()
	w.feed(after(first, second, 1)) // the media core shifts a restart past the stream's end
	if !bytes.Contains(playlist(t, m), []byte("#EXT-X-DISCONTINUITY")) {
		t.Fatalf("no discontinuity:\n%s", playlist(t, m))
	}
}

// TestPromotedFollowerKeepsTarget: a follower promoted when its leader dies keeps the
// target it learned from the leader's markers through a hole of 1.5 s in the timestamps
// (the failover) and a longer GOP after it, and numbers on. Before, both raised the
// target (2 -> 3 -> 4 in issue 15's failover).
func TestPromotedFollowerKeepsTarget(t *testing.T) {
	short := makeFLVGOP(t, "aac", 6, 25)
	long := makeFLVGOP(t, "aac", 12, 100)
	_, _, stream := lead(t, Config{Fragment: 2 * time.Second, Window: 6}, short)
	f := New(Config{Fragment: 2 * time.Second, Window: 6, Follow: true}, nil)
	defer f.Close()
	w := watchTarget(t, f, 2)
	failAt := indexAt(stream, 5000)
	w.feed(stream[:failAt])
	f.SetFollow(false)
	var rest []*flv.Tag // the old leader's markers end with it
	for _, tg := range stream[failAt:] {
		if !IsCutMarker(tg) {
			rest = append(rest, tg)
		}
	}
	w.feed(rest)
	w.feed(after(rest, long, 1500))
	pl := decode(t, playlist(t, f))
	if pl.SeqNo+uint64(pl.Count()) < 7 {
		t.Fatalf("the promoted follower stopped numbering:\n%s", playlist(t, f))
	}
}
