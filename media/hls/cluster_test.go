package hls

import (
	"bytes"
	"fmt"
	"maps"
	"peer/media/mpegts"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"peer/media/flv"
)

// lead feeds parts of a stream to a new leader, calling Discontinuity between parts. It
// returns the leader, the segments it published, and what a follower receives: every tag,
// each cut marker in front of the tag it cuts before.
func lead(tb testing.TB, cfg Config, parts ...[]*flv.Tag) (*Muxer, map[string][]byte, []*flv.Tag) {
	tb.Helper()
	var out []*flv.Tag
	cfg.OnCut = func(mk *flv.Tag) { out = append(out, mk) }
	m := New(cfg, nil)
	segs := map[string][]byte{}
	var last []byte
	for i, part := range parts {
		if i > 0 {
			m.Discontinuity()
		}
		for _, t := range part {
			m.WriteTag(t)
			out = append(out, t)
			last = recordNewest(tb, m, last, segs)
		}
	}
	return m, segs, out
}

// collect feeds tags and records every segment as it is published.
func collect(tb testing.TB, m *Muxer, tags []*flv.Tag) map[string][]byte {
	tb.Helper()
	segs := map[string][]byte{}
	var last []byte
	for _, t := range tags {
		m.WriteTag(t)
		last = recordNewest(tb, m, last, segs)
	}
	return segs
}

// recordNewest stores the newest listed segment when the playlist changed since last.
func recordNewest(tb testing.TB, m *Muxer, last []byte, into map[string][]byte) []byte {
	tb.Helper()
	p, ok := m.Playlist()
	if !ok || bytes.Equal(p, last) {
		return last
	}
	n := names(tb, p)
	newest := n[len(n)-1]
	b, _, ok := m.Segment(newest)
	if !ok {
		tb.Fatalf("listed %s is not served", newest)
	}
	into[newest] = b
	return p
}

// joinAt is what a follower gets when it subscribes at tags[i]: the current sequence
// headers, then the stream from there.
func joinAt(tags []*flv.Tag, i int) []*flv.Tag {
	var out []*flv.Tag
	for _, t := range tags[:i] {
		if t.IsSequenceHeader() {
			out = append(out, t)
		}
	}
	return append(out, tags[i:]...)
}

// indexAt is the index of the first tag at or after ms (skipping markers).
func indexAt(tags []*flv.Tag, ms int64) int {
	for i, t := range tags {
		if t.Time >= ms && !IsCutMarker(t) {
			return i
		}
	}
	return len(tags)
}

func seqOf(tb testing.TB, name string) uint64 {
	n, err := strconv.ParseUint(strings.TrimSuffix(name, ".ts"), 10, 64)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// TestLeaderFollower: followers fed the leader's markers in-band, from the start or from
// mid-stream (mid-GOP, with TS counters far from zero), produce the same segment names,
// bytes and playlists, through a publisher restart the followers only learn of from the
// markers.
func TestLeaderFollower(t *testing.T) {
	tags := makeFLV(t, "aac")
	cfg := Config{Fragment: time.Second, Window: 3}
	leader, leaderSegs, stream := lead(t, cfg, tags, tags) // the second part restarts at time 0
	defer leader.Close()
	again, _, _ := lead(t, cfg, tags, tags)
	defer again.Close()
	if !bytes.Equal(playlist(t, leader), playlist(t, again)) {
		t.Fatal("a leader is not deterministic")
	}

	for _, tc := range []struct {
		name   string
		joinMS int64
		first  uint64
	}{
		{"from-start", 0, 0},
		{"mid-stream", 2500, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := New(Config{Fragment: time.Second, Window: 3, Follow: true}, nil)
			defer f.Close()
			got := collect(t, f, joinAt(stream, indexAt(stream, tc.joinMS)))

			var common []string
			for name, b := range got {
				lb, ok := leaderSegs[name]
				if !ok {
					t.Fatalf("follower made %s, the leader did not", name)
				}
				if !bytes.Equal(b, lb) {
					t.Fatalf("%s differs: %d bytes vs the leader's %d", name, len(b), len(lb))
				}
				common = append(common, name)
			}
			slices.SortFunc(common, func(a, b string) int { return int(seqOf(t, a)) - int(seqOf(t, b)) })
			// 2 × 8 s cut every second: segments 0-14 are complete.
			if len(common) != 15-int(tc.first) || seqOf(t, common[0]) != tc.first {
				t.Fatalf("follower has %v, want %d.ts to 14.ts", common, tc.first)
			}
			lp, fp := playlist(t, leader), playlist(t, f)
			if !bytes.Equal(lp, fp) {
				t.Fatalf("playlists differ:\nleader:\n%s\nfollower:\n%s", lp, fp)
			}
			if !strings.Contains(string(fp), "#EXT-X-DISCONTINUITY-SEQUENCE:1\n") {
				t.Fatalf("the restart (8.ts) slid out of the window:\n%s", fp)
			}
			ls, _ := writing(leader)
			if fs, ok := writing(f); !ok || fs != ls {
				t.Fatalf("follower writes %d, leader %d", fs, ls)
			}
		})
	}

	t.Run("no-markers", func(t *testing.T) {
		f := New(Config{Fragment: time.Second, Follow: true}, nil)
		defer f.Close()
		feed(f, tags)
		if _, ok := f.Playlist(); ok {
			t.Fatal("a follower cut on its own")
		}
		if _, ok := writing(f); ok {
			t.Fatal("a follower without markers reports a cut point")
		}
	})
}

// TestFollowerTrackAppears: the stream is audio-only for 3 s, then video starts. The
// leader re-announces its streams (PMT version 1, counters carried on); a follower that
// joins afterwards reproduces that state byte for byte, and the leader's continuity
// counters never jump.
func TestFollowerTrackAppears(t *testing.T) {
	tags := makeFLV(t, "aac")
	var avcHeader *flv.Tag
	var stream []*flv.Tag
	for _, tg := range tags {
		switch {
		case tg.Type == flv.TypeVideo && tg.IsSequenceHeader():
			avcHeader = tg
		case tg.Type == flv.TypeVideo && tg.Time < 3000:
		case tg.Type == flv.TypeVideo && avcHeader != nil:
			stream = append(stream, flv.NewTag(flv.TypeVideo, tg.Time, avcHeader.Data()))
			avcHeader = nil
			stream = append(stream, tg)
		default:
			stream = append(stream, tg)
		}
	}
	leader, leaderSegs, withMarkers := lead(t, Config{Fragment: time.Second, Window: 3}, stream)
	defer leader.Close()
	var all [][]byte
	for i := range len(leaderSegs) {
		all = append(all, leaderSegs[fmt.Sprintf("%d.ts", i)])
	}
	checkCC(t, all)

	if n := len(all); n != 7 {
		t.Fatalf("leader made %d segments, want 7: three of audio, then one per second", n)
	}

	// Join where video appears (the marker announces a PMT change still to be written)
	// and a segment later.
	for _, joinMS := range []int64{2500, 3500} {
		f := New(Config{Fragment: time.Second, Window: 3, Follow: true}, nil)
		defer f.Close()
		got := collect(t, f, joinAt(withMarkers, indexAt(withMarkers, joinMS)))
		if len(got) < 3 {
			t.Fatalf("join at %d ms: follower made %d segments", joinMS, len(got))
		}
		for name, b := range got {
			if !bytes.Equal(b, leaderSegs[name]) {
				t.Fatalf("join at %d ms: %s differs from the leader's", joinMS, name)
			}
		}
		if lp, fp := playlist(t, leader), playlist(t, f); !bytes.Equal(lp, fp) {
			t.Fatalf("join at %d ms: playlists differ:\n%s\n%s", joinMS, lp, fp)
		}
	}
	if c := codecs(probe(t, writeOut(t, leader))); c != "h264,aac" {
		t.Fatalf("ffprobe finds %q", c)
	}
}

// TestPromotedFollower: a follower promoted with SetFollow(false) when the leader's
// markers stop keeps cutting where the old leader did: the same names, bytes and playlist.
func TestPromotedFollower(t *testing.T) {
	tags := makeFLV(t, "aac")
	cfg := Config{Fragment: time.Second, Window: 3}
	leader, leaderSegs, stream := lead(t, cfg, tags)
	defer leader.Close()

	f := New(Config{Fragment: time.Second, Window: 3, Follow: true}, nil)
	defer f.Close()
	failAt := indexAt(stream, 4500)
	got := collect(t, f, stream[:failAt])
	f.SetFollow(false)
	var rest []*flv.Tag // the old leader's markers end with it
	for _, tg := range stream[failAt:] {
		if !IsCutMarker(tg) {
			rest = append(rest, tg)
		}
	}
	maps.Copy(got, collect(t, f, rest))

	if len(got) != len(leaderSegs) {
		t.Fatalf("promoted follower made %d segments, the leader %d", len(got), len(leaderSegs))
	}
	for name, b := range got {
		if !bytes.Equal(b, leaderSegs[name]) {
			t.Fatalf("%s differs from the old leader's", name)
		}
	}
	if !bytes.Equal(playlist(t, leader), playlist(t, f)) {
		t.Fatal("playlists differ")
	}
}

// TestSleepingFollower: a follower that sleeps publishes nothing; woken mid-segment it
// packages the segments it held (a first playlist of 3) and the one in progress, byte for
// byte the leader's, and
// sleeping again drops its window. Promoted while asleep, it finishes the segment in flight
// from the tags it held, byte for byte the leader's, and numbers on.
func TestSleepingFollower(t *testing.T) {
	tags := makeFLV(t, "aac")
	cfg := Config{Fragment: time.Second, Window: 3}
	leader, leaderSegs, stream := lead(t, cfg, tags)
	defer leader.Close()
	wakeAt, failAt := indexAt(stream, 3500), indexAt(stream, 5500)

	t.Run("wake", func(t *testing.T) {
		f := New(Config{Fragment: time.Second, Window: 3, Follow: true}, nil)
		defer f.Close()
		f.Sleep()
		if got := collect(t, f, stream[:wakeAt]); len(got) != 0 || !f.asleep {
			t.Fatalf("a sleeping follower published %v", slices.Collect(maps.Keys(got)))
		}
		f.Wake()
		// The cut every second puts 3.ts in progress at 3.5 s: the follower held it and the
		// three before, which its first playlist lists (one segment listed made hls.js start
		// at the live edge and rebuffer).
		if first := names(t, playlist(t, f)); !slices.Equal(first, []string{"0.ts", "1.ts", "2.ts"}) {
			t.Fatalf("woken at 3.5 s, the first playlist lists %v, want 0.ts to 2.ts", first)
		}
		for _, name := range []string{"0.ts", "1.ts", "2.ts"} {
			if b, _, ok := f.Segment(name); !ok || !bytes.Equal(b, leaderSegs[name]) {
				t.Fatalf("%s differs from the leader's", name)
			}
		}
		got := collect(t, f, stream[wakeAt:failAt])
		if got["3.ts"] == nil || got["4.ts"] == nil {
			t.Fatalf("the follower made %v, want 3.ts and 4.ts", slices.Collect(maps.Keys(got)))
		}
		for name, b := range got {
			if !bytes.Equal(b, leaderSegs[name]) {
				t.Fatalf("%s differs from the leader's", name)
			}
		}
		f.Sleep()
		if _, ok := f.Playlist(); ok {
			t.Fatal("the playlist outlived Sleep")
		}
		if _, _, ok := f.Segment("4.ts"); ok {
			t.Fatal("a segment outlived Sleep")
		}
	})

	t.Run("promoted", func(t *testing.T) {
		f := New(Config{Fragment: time.Second, Window: 3, Follow: true}, nil)
		defer f.Close()
		f.Sleep()
		collect(t, f, stream[:failAt])
		f.SetFollow(false)
		var rest []*flv.Tag
		for _, tg := range stream[failAt:] {
			if !IsCutMarker(tg) {
				rest = append(rest, tg)
			}
		}
		got := collect(t, f, rest)
		p := decode(t, playlist(t, f))
		// The last marker started 5.ts: the new leader finishes it from the tags it held
		// (the leader's bytes, no hole, no discontinuity) and numbers on.
		if p.SeqNo > 5 || got["5.ts"] == nil || got["6.ts"] == nil {
			t.Fatalf("promoted asleep, made %v (playlist from %d), want 5.ts and on", slices.Collect(maps.Keys(got)), p.SeqNo)
		}
		if !bytes.Equal(got["5.ts"], leaderSegs["5.ts"]) {
			t.Fatal("the segment in flight at the promotion differs from the leader's")
		}
		for _, sg := range p.Segments {
			if sg != nil && sg.Discontinuity {
				t.Fatalf("a discontinuity at %s after a promotion that lost nothing", sg.URI)
			}
		}
		if c := codecs(probe(t, writeOut(t, f))); c != "h264,aac" {
			t.Fatalf("ffprobe finds %q", c)
		}
	})
}

// checkCC verifies that continuity counters run on across the concatenated segments.
func checkCC(tb testing.TB, segs [][]byte) {
	tb.Helper()
	last := map[uint16]int{}
	for i, s := range segs {
		for off := 0; off+mpegts.PacketSize <= len(s); off += mpegts.PacketSize {
			p := s[off:]
			pid := uint16(p[1]&0x1f)<<8 | uint16(p[2])
			if p[3]&0x10 == 0 || pid == 0x1fff { // no payload: counter does not advance
				continue
			}
			cc := int(p[3] & 0x0f)
			if prev, ok := last[pid]; ok && cc != (prev+1)&15 {
				tb.Fatalf("segment %d: PID %#x counter %d follows %d", i, pid, cc, prev)
			}
			last[pid] = cc
		}
	}
}

func TestCutMarker(t *testing.T) {
	c := Cut{Seq: 1<<40 + 7, Discontinuity: true, DiscSeq: 3, Target: 4, Cont: true, TS: mpegts.State{VideoCC: 5, AudioCC: 15, PATCC: 0, PMTCC: -1, PMTVersion: 31}}
	mk := CutMarker(c, 4294968000)
	if mk.Type != flv.TypeScript || mk.Time != 4294968000 || !IsCutMarker(mk) {
		t.Fatalf("bad marker tag %+v", mk)
	}
	got, ok := ParseCutMarker(mk)
	if !ok || got != c {
		t.Fatalf("round trip: %+v, %v; want %+v", got, ok, c)
	}
	// Truncated or foreign script data is rejected without panicking.
	d := mk.Data()
	for n := range len(d) {
		if _, ok := ParseCutMarker(flv.NewTag(flv.TypeScript, 0, d[:n])); ok {
			t.Fatalf("accepted %d of %d bytes", n, len(d))
		}
	}
	meta := flv.NewTag(flv.TypeScript, 0, []byte{0x02, 0, 10, 'o', 'n', 'M', 'e', 't', 'a', 'D', 'a', 't', 'a', 0x08, 0, 0, 0, 0, 0, 0, 9})
	if IsCutMarker(meta) {
		t.Fatal("onMetaData taken for a marker")
	}
}
