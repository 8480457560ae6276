package hls

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"peer/media/mpegts"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/asticode/go-astits"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"peer/media/flv"
)

// TestPlaysInFFmpeg packages an ffmpeg-made FLV with a small window and checks the
// playlist as it slides, the files in Dir, and that ffprobe and ffmpeg accept the result.
func TestPlaysInFFmpeg(t *testing.T) {
	tags := makeFLV(t, "aac")
	dir := t.TempDir()
	m := New(Config{Window: 2, Dir: dir}, nil)
	defer m.Close()

	if _, ok := m.Playlist(); ok {
		t.Fatal("playlist before the first segment")
	}
	var seqs []uint64 // MEDIA-SEQUENCE of each new playlist
	var last []byte
	for _, tag := range tags {
		m.WriteTag(tag)
		if p, ok := m.Playlist(); ok && !bytes.Equal(p, last) {
			pl := decode(t, p)
			seqs = append(seqs, pl.SeqNo)
			if !strings.Contains(string(p), "#EXT-X-TARGETDURATION:2\n") {
				t.Fatalf("2 s segments need TARGETDURATION 2:\n%s", p)
			}
			last = p
		}
	}
	// 8 s cut every 2 s: segments 0-2 complete, the one from 6 s still open.
	if want := []uint64{0, 0, 1}; !slices.Equal(seqs, want) {
		t.Fatalf("MEDIA-SEQUENCE went %v, want %v", seqs, want)
	}
	if got := names(t, last); !slices.Equal(got, []string{"1.ts", "2.ts"}) {
		t.Fatalf("playlist lists %v:\n%s", got, last)
	}
	for _, s := range decode(t, last).Segments[:2] {
		if s.Duration != 2 {
			t.Errorf("%s lasts %v s, want 2", s.URI, s.Duration)
		}
	}
	if seq, ok := writing(m); !ok || seq != 3 {
		t.Fatalf("open segment %d, %v; want 3", seq, ok)
	}
	if _, _, ok := m.Segment("0.ts"); !ok {
		t.Fatal("a just-expired segment must stay fetchable")
	}
	if _, _, ok := m.Segment("3.ts"); ok {
		t.Fatal("the open segment must not be served")
	}

	// Dir mirrors memory.
	onDisk, err := os.ReadFile(filepath.Join(dir, "playlist.m3u8"))
	if err != nil || !bytes.Equal(onDisk, last) {
		t.Fatalf("playlist on disk differs (%v)", err)
	}
	var segs [][]byte
	for _, n := range []string{"0.ts", "1.ts", "2.ts"} {
		b, _, _ := m.Segment(n)
		if d, err := os.ReadFile(filepath.Join(dir, n)); err != nil || !bytes.Equal(d, b) || len(b)%mpegts.PacketSize != 0 {
			t.Fatalf("%s on disk differs or is not whole TS packets (%v)", n, err)
		}
		segs = append(segs, b)
	}
	checkCC(t, segs) // one muxer across segments: counters never restart

	streams := probe(t, filepath.Join(dir, "playlist.m3u8"))
	if c := codecs(streams); c != "h264,aac" {
		t.Fatalf("ffprobe finds %q, want h264,aac", c)
	}
	if streams[0].Width != 320 || streams[0].Height != 240 {
		t.Fatalf("video is %dx%d", streams[0].Width, streams[0].Height)
	}
	decodeAll(t, filepath.Join(dir, "playlist.m3u8"))

	m.Close()
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("Close left %d files in Dir", len(left))
	}
	if _, ok := m.Playlist(); ok {
		t.Fatal("playlist after Close")
	}
}

// TestSingleTrack: audio-only streams are cut on time, video-only streams on keyframes.
func TestSingleTrack(t *testing.T) {
	tags := makeFLV(t, "aac")
	for _, tc := range []struct {
		name   string
		drop   uint8
		codecs string
	}{
		{"audio-only", flv.TypeVideo, "aac"},
		{"video-only", flv.TypeAudio, "h264"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New(Config{Fragment: time.Second, Window: 10}, nil)
			defer m.Close()
			feed(m, without(tags, tc.drop))
			p := playlist(t, m)
			if n := len(names(t, p)); n < 6 {
				t.Fatalf("%d segments from 8 s cut every second:\n%s", n, p)
			}
			path := writeOut(t, m)
			if c := codecs(probe(t, path)); c != tc.codecs {
				t.Fatalf("ffprobe finds %q, want %q", c, tc.codecs)
			}
			decodeAll(t, path)
		})
	}
}

// TestDiscontinuity: a publisher restart ends the current segment at its last tag, the
// next one carries EXT-X-DISCONTINUITY, numbering keeps going, and once the restart slides
// out EXT-X-DISCONTINUITY-SEQUENCE counts it. Expired segments leave memory and Dir.
func TestDiscontinuity(t *testing.T) {
	tags := makeFLV(t, "aac")
	dir := t.TempDir()
	m := New(Config{Fragment: time.Second, Window: 3, Dir: dir}, nil)
	defer m.Close()
	var seqs []uint64
	var atRestart []byte
	var atRestartPath string
	watch := func(part []*flv.Tag) {
		var last []byte
		for _, tag := range part {
			m.WriteTag(tag)
			p, _ := m.Playlist()
			if bytes.Equal(p, last) {
				continue
			}
			last = p
			seqs = append(seqs, decode(t, p).SeqNo)
			if n := names(t, p); n[len(n)-1] == "8.ts" {
				atRestart = p
				atRestartPath = writeOut(t, m)
			}
		}
	}
	watch(tags)
	m.Discontinuity()
	watch(tags) // times start over at 0

	if !slices.IsSorted(seqs) || seqs[len(seqs)-1] != 12 {
		t.Fatalf("MEDIA-SEQUENCE went %v; want it rising to 12", seqs)
	}
	if !regexp.MustCompile(`#EXT-X-DISCONTINUITY\n#EXTINF:[0-9.]+,\n8\.ts\n`).Match(atRestart) {
		t.Fatalf("8.ts, the first segment after the restart, lacks EXT-X-DISCONTINUITY:\n%s", atRestart)
	}
	if strings.Contains(string(atRestart), "DISCONTINUITY-SEQUENCE") {
		t.Fatalf("nothing slid out yet:\n%s", atRestart)
	}
	pl := decode(t, atRestart)
	if d := pl.Segments[1].Duration; pl.Segments[1].URI != "7.ts" || d < 0.9 || d >= 1 {
		t.Fatalf("7.ts, cut short by the restart, lasts %v s; want its frames' span", d)
	}
	decodeAll(t, atRestartPath)

	p := playlist(t, m)
	if got := names(t, p); !slices.Equal(got, []string{"12.ts", "13.ts", "14.ts"}) {
		t.Fatalf("window %v", got)
	}
	if !strings.Contains(string(p), "#EXT-X-DISCONTINUITY-SEQUENCE:1\n") || strings.Contains(string(p), "#EXT-X-DISCONTINUITY\n") {
		t.Fatalf("after the restart slid out:\n%s", p)
	}
	// Window 3 plus 3 kept: 9.ts to 14.ts.
	for seq := range 15 {
		name := fmt.Sprintf("%d.ts", seq)
		_, _, inMem := m.Segment(name)
		_, err := os.Stat(filepath.Join(dir, name))
		if want := seq >= 9; inMem != want || (err == nil) != want {
			t.Errorf("%s: in memory %v, on disk %v; want %v", name, inMem, err == nil, want)
		}
	}
}

// TestMP3Audio: MP3 audio cannot go into these segments; one log line says so and the
// output is video-only.
func TestMP3Audio(t *testing.T) {
	tags := makeFLV(t, "libmp3lame")
	core, logs := observer.New(zap.InfoLevel)
	m := New(Config{Window: 10}, zap.New(core))
	defer m.Close()
	feed(m, tags)
	skipped := logs.FilterMessageSnippet("not packaged").All()
	if len(skipped) != 1 || skipped[0].ContextMap()["codec"] != "MP3" {
		t.Fatalf("want one line about skipping MP3, got %v", skipped)
	}
	path := writeOut(t, m)
	if c := codecs(probe(t, path)); c != "h264" {
		t.Fatalf("ffprobe finds %q, want h264 only", c)
	}
	decodeAll(t, path)
}

// TestTimestampWrap: stream times crossing 2^32 ms, which is also where the 33-bit PES
// clock wraps (2^32 * 90 = 45 * 2^33), give steady durations and timestamps that only grow
// once unwrapped.
func TestTimestampWrap(t *testing.T) {
	const offset = 4294960000 // 2^32 ms comes 7.3 s in
	// 10 s rather than 8, so the crossing lands in a complete segment.
	tags := shifted(makeFLVFor(t, "aac", 10), offset)
	var firstKey int64
	for _, tag := range tags {
		if tag.IsKeyframe() {
			firstKey = tag.Time
			break
		}
	}
	m := New(Config{Fragment: time.Second, Window: 10}, nil)
	defer m.Close()
	feed(m, tags)
	p := playlist(t, m)
	pl := decode(t, p)
	if pl.Count() != 9 {
		t.Fatalf("%d segments listed, want 9", pl.Count())
	}
	var all []byte
	for _, s := range pl.Segments {
		if s == nil {
			continue
		}
		if s.Duration != 1 {
			t.Fatalf("%s lasts %v s:\n%s", s.URI, s.Duration, p)
		}
		b, _, _ := m.Segment(s.URI)
		all = append(all, b...)
	}

	dmx := astits.NewDemuxer(context.Background(), bytes.NewReader(all))
	last := map[uint16]int64{}
	var wrapped bool
	for {
		d, err := dmx.NextData()
		if errors.Is(err, astits.ErrNoMorePackets) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if d.PES == nil {
			continue
		}
		oh := d.PES.Header.OptionalHeader
		ts := oh.PTS.Base
		if oh.DTS != nil {
			ts = oh.DTS.Base
		}
		if prev, ok := last[d.PID]; ok {
			if ts < prev-1<<32 { // unwrap: a big backward step is the 33-bit wrap
				ts += 1 << 33
				wrapped = true
			}
			if ts <= prev {
				t.Fatalf("PID %#x: timestamp %d after %d", d.PID, ts, prev)
			}
		} else if want := mpegts.Clock90(firstKey); d.PID == mpegts.PIDVideo && ts != want {
			t.Fatalf("video starts at %d, want %d", ts, want)
		}
		last[d.PID] = ts
	}
	if !wrapped || len(last) != 2 {
		t.Fatalf("wrapped %v, streams %d: the test no longer crosses the PES clock wrap", wrapped, len(last))
	}
	decodeAll(t, writeOut(t, m))
}

// TestConcurrentReaders reads while the publisher writes (run with -race).
func TestConcurrentReaders(t *testing.T) {
	tags := makeFLV(t, "aac")
	m := New(Config{Fragment: 500 * time.Millisecond, Window: 2}, nil)
	defer m.Close()
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if p, ok := m.Playlist(); ok {
					for _, n := range names(t, p) {
						b, release, ok := m.Segment(n)
						if !ok {
							continue
						}
						// Held, a segment's bytes stay put even after it expires (its
						// buffer is reused only once nobody holds it).
						sum := crc32.ChecksumIEEE(b)
						if len(b)%mpegts.PacketSize != 0 {
							t.Errorf("%s is %d bytes", n, len(b))
						}
						time.Sleep(time.Millisecond)
						if crc32.ChecksumIEEE(b) != sum {
							t.Errorf("%s changed while held", n)
						}
						release()
					}
				}
			}
		}()
	}
	feed(m, tags)
	close(done)
	wg.Wait()
}

// BenchmarkWriteTag feeds an 8 s stream over and over, restarting the publisher at each
// pass, and reports the cost per tag.
func BenchmarkWriteTag(b *testing.B) {
	tags := makeFLV(b, "aac")
	m := New(Config{}, nil)
	defer m.Close()
	var bytesIn int64
	for _, t := range tags {
		bytesIn += int64(t.Size())
	}
	b.SetBytes(bytesIn / int64(len(tags)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%len(tags) == 0 {
			m.Discontinuity()
		}
		m.WriteTag(tags[i%len(tags)])
	}
}

// A leader's Cut runs before the keyframe it cuts at goes to the players, so it only
// decides: the closed segment is published, and the next one's buffer given its room,
// by Mux, after the players were served.
func TestCutLeavesTheWorkToMux(t *testing.T) {
	tags := makeFLV(t, "aac")
	m := New(Config{}, nil)
	defer m.Close()
	cuts := 0
	for _, tag := range tags {
		before, _ := m.Playlist()
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		m.Cut(tag)
		runtime.ReadMemStats(&ms1)
		after, _ := m.Playlist()
		if m.lastSize > 0 && !bytes.Equal(before, after) {
			t.Fatal("Cut published a segment: that is Mux's work")
		}
		if grew := ms1.TotalAlloc - ms0.TotalAlloc; m.lastSize > 0 && grew > uint64(m.lastSize)/2 {
			t.Fatalf("Cut allocated %d bytes (segments are %d): the next segment's buffer is Mux's work", grew, m.lastSize)
		}
		if len(m.ended) > 0 {
			cuts++
		}
		m.Mux(tag)
		if len(m.ended) > 0 {
			t.Fatal("Mux left a closed segment unpublished")
		}
	}
	if cuts < 3 {
		t.Fatalf("%d cuts seen, want at least 3", cuts)
	}
}

// TestSegmentBuffersReused: an expired segment nobody holds gives its buffer to a later
// segment; one still held (Segment without release) keeps its bytes.
func TestSegmentBuffersReused(t *testing.T) {
	tags := append(makeFLV(t, "aac"), shifted(makeFLV(t, "aac"), 8000)...)
	m := New(Config{Fragment: 500 * time.Millisecond, Window: 2}, nil)
	defer m.Close()
	spared := func(b []byte) bool {
		for _, s := range m.spare {
			if unsafe.SliceData(s.Bytes()) == unsafe.SliceData(b) {
				return true
			}
		}
		return false
	}
	var free, held, heldCopy []byte
	freeSpared := false
	for _, tag := range tags {
		m.WriteTag(tag)
		if free == nil {
			if b, release, ok := m.Segment("0.ts"); ok {
				free = b
				release()
			}
		}
		if held == nil {
			if b, _, ok := m.Segment("1.ts"); ok {
				held, heldCopy = b, bytes.Clone(b)
			}
		}
		_, release, listed := m.Segment("0.ts")
		if listed {
			release()
		}
		if !listed && free != nil && !freeSpared {
			if !spared(free) {
				t.Fatal("0.ts expired unheld, but its buffer is not kept for the next segment")
			}
			freeSpared = true
		}
		if held != nil && spared(held) {
			t.Fatal("1.ts is held, but its buffer is kept for reuse")
		}
	}
	if _, _, ok := m.Segment("1.ts"); ok || !freeSpared {
		t.Fatalf("the stream was too short: 1.ts still listed, or 0.ts never expired (%v)", freeSpared)
	}
	if !bytes.Equal(held, heldCopy) {
		t.Fatal("a held segment's bytes changed after it expired")
	}
}
