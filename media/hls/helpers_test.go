package hls

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grafov/m3u8"
	"go.uber.org/goleak"

	"peer/media/flv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tool finds an external program: a missing one fails the test under CI, skips it
// elsewhere.
func tool(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("%s is required under CI: %v", name, err)
		}
		tb.Skipf("%s not installed", name)
	}
	return p
}

// command runs an external program under a timeout: on a broken live playlist ffmpeg and
// ffprobe keep polling for minutes.
func command(tb testing.TB, name string, args ...string) *exec.Cmd {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	tb.Cleanup(cancel)
	return exec.CommandContext(ctx, name, args...)
}

// makeFLV encodes 8 s of test video (320x240, 25 fps, a keyframe every second) and a
// 440 Hz tone with the given audio encoder, and returns the tags.
func makeFLV(tb testing.TB, audioCodec string) []*flv.Tag { return makeFLVFor(tb, audioCodec, 8) }

func makeFLVFor(tb testing.TB, audioCodec string, seconds int) []*flv.Tag {
	tb.Helper()
	return makeFLVGOP(tb, audioCodec, seconds, 25)
}

// makeFLVGOP is makeFLVFor with a keyframe every gop frames.
func makeFLVGOP(tb testing.TB, audioCodec string, seconds, gop int) []*flv.Tag {
	tb.Helper()
	ffmpeg := tool(tb, "ffmpeg")
	out := filepath.Join(tb.TempDir(), "out.flv")
	cmd := command(tb, ffmpeg, "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", strconv.Itoa(gop), "-pix_fmt", "yuv420p",
		"-c:a", audioCodec, "-b:a", "64k", "-t", strconv.Itoa(seconds), "-f", "flv", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	f, err := os.Open(out)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r := flv.NewReader(f)
	var tags []*flv.Tag
	for {
		t, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		tags = append(tags, t)
	}
	if len(tags) < 300 {
		tb.Fatalf("only %d tags", len(tags))
	}
	return tags
}

// writing is the number of the segment m is writing, read on its writer's
// goroutine; false when there is none.
func writing(m *Muxer) (uint64, bool) {
	if m.cur == nil {
		return 0, false
	}
	return m.cur.seq, true
}

func feed(m *Muxer, tags []*flv.Tag) {
	for _, t := range tags {
		m.WriteTag(t)
	}
}

// shifted returns copies of tags with times moved by d ms.
func shifted(tags []*flv.Tag, d int64) []*flv.Tag {
	out := make([]*flv.Tag, len(tags))
	for i, t := range tags {
		out[i] = flv.NewTag(t.Type, t.Time+d, t.Data())
	}
	return out
}

// without drops the tags of one type.
func without(tags []*flv.Tag, typ uint8) []*flv.Tag {
	var out []*flv.Tag
	for _, t := range tags {
		if t.Type != typ {
			out = append(out, t)
		}
	}
	return out
}

func playlist(tb testing.TB, m *Muxer) []byte {
	tb.Helper()
	p, ok := m.Playlist()
	if !ok {
		tb.Fatal("no playlist")
	}
	return p
}

// decode parses a live media playlist.
func decode(tb testing.TB, p []byte) *m3u8.MediaPlaylist {
	tb.Helper()
	pl, typ, err := m3u8.Decode(*bytes.NewBuffer(p), true)
	if err != nil || typ != m3u8.MEDIA {
		tb.Fatalf("playlist does not parse (%v):\n%s", err, p)
	}
	return pl.(*m3u8.MediaPlaylist)
}

// names lists the segment URIs of a playlist.
func names(tb testing.TB, p []byte) []string {
	tb.Helper()
	var out []string
	for _, s := range decode(tb, p).Segments {
		if s != nil {
			out = append(out, s.URI)
		}
	}
	return out
}

// writeOut stores a muxer's playlist and listed segments in a new directory and returns
// the playlist path.
func writeOut(tb testing.TB, m *Muxer) string {
	tb.Helper()
	dir := tb.TempDir()
	p := playlist(tb, m)
	for _, n := range names(tb, p) {
		b, _, ok := m.Segment(n)
		if !ok {
			tb.Fatalf("listed segment %s not served", n)
		}
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	path := filepath.Join(dir, "playlist.m3u8")
	if err := os.WriteFile(path, p, 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

type probeStream struct {
	CodecName string `json:"codec_name"`
	Width     int    `json:"width"`
	Height    int    `json:"height"`
}

// probe returns the streams ffprobe finds in a playlist.
func probe(tb testing.TB, path string) []probeStream {
	tb.Helper()
	var stderr bytes.Buffer
	cmd := command(tb, tool(tb, "ffprobe"), "-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "json", path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		tb.Fatalf("ffprobe: %v\n%s", err, stderr.Bytes())
	}
	var res struct{ Streams []probeStream }
	if err := json.Unmarshal(out, &res); err != nil {
		tb.Fatal(err)
	}
	return res.Streams
}

// decodeAll runs the playlist through ffmpeg's decoders and fails on any error output.
// live_start_index 0 plays the whole window; m3u8_hold_counters ends the run after two
// reloads bring no new segment instead of waiting for more as a live player would (with 1
// this ffmpeg gives up before the first segment).
func decodeAll(tb testing.TB, path string) {
	tb.Helper()
	cmd := command(tb, tool(tb, "ffmpeg"), "-v", "error", "-live_start_index", "0", "-m3u8_hold_counters", "2",
		"-i", path, "-f", "null", "-")
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		tb.Fatalf("ffmpeg decode: %v\n%s", err, out)
	}
}

func codecs(streams []probeStream) string {
	var s []string
	for _, st := range streams {
		s = append(s, st.CodecName)
	}
	return strings.Join(s, ",")
}
