// Package avtest drives real media clients (ffmpeg, ffprobe, VLC) against peer nodes for
// tests and the chaos harness: a lavfi publisher, a VLC recorder, probes, decoding and
// packet timelines.
package avtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// RequireTools fails the test when ffmpeg or ffprobe is missing under CI, and skips it
// elsewhere.
func RequireTools(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is required under CI: %v", tool, err)
			}
			t.Skipf("%s not installed", tool)
		}
	}
}

// PublishOptions shape the lavfi test stream.
type PublishOptions struct {
	Duration time.Duration // 0: until stopped
	// TSOffset shifts every timestamp (ffmpeg -output_ts_offset), e.g. past 2^24 ms.
	TSOffset time.Duration
	Size     string // default 320x240
	Extra    []string
}

// Proc is a client process started by a test; Stop ends it by PID.
type Proc struct {
	Cmd    *exec.Cmd
	Stderr *bytes.Buffer
	done   chan struct{}
	err    error
}

// Publish starts ffmpeg publishing H.264 + AAC test video (-re) to url.
func Publish(url string, o PublishOptions) (*Proc, error) {
	size := o.Size
	if size == "" {
		size = "320x240"
	}
	args := []string{"-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc=size=" + size + ":rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"}
	if o.Duration > 0 {
		args = append(args, "-t", strconv.FormatFloat(o.Duration.Seconds(), 'f', 1, 64))
	}
	args = append(args, "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25",
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k")
	if o.TSOffset > 0 {
		args = append(args, "-output_ts_offset", strconv.FormatFloat(o.TSOffset.Seconds(), 'f', 3, 64))
	}
	args = append(args, o.Extra...)
	args = append(args, "-f", "flv", url)
	return Start("ffmpeg", args...)
}

// Start runs a client command in the background.
func Start(name string, args ...string) (*Proc, error) { return startCmd(exec.Command(name, args...)) }

// startCmd starts cmd, capturing its standard error.
func startCmd(cmd *exec.Cmd) (*Proc, error) {
	p := &Proc{Cmd: cmd, Stderr: &bytes.Buffer{}, done: make(chan struct{})}
	p.Cmd.Stderr = p.Stderr
	if err := p.Cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.err = p.Cmd.Wait(); close(p.done) }()
	return p, nil
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the exit error, valid after Done.
func (p *Proc) Err() error { <-p.done; return p.err }

// Stop sends SIGTERM (then SIGKILL after 3 s) to this process only and waits.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		p.Cmd.Process.Kill()
		<-p.done
	}
}

// Stream is one elementary stream as ffprobe reports it.
type Stream struct {
	CodecType string `json:"codec_type"`
	CodecName string `json:"codec_name"`
	Width     int    `json:"width"`
	Height    int    `json:"height"`
}

// Packet is one demuxed packet.
type Packet struct {
	CodecType string `json:"codec_type"`
	PTS       string `json:"pts_time"`
	DTS       string `json:"dts_time"`
	Flags     string `json:"flags"`
}

// Seconds parses the packet's DTS (PTS when DTS is absent).
func (p Packet) Seconds() float64 {
	s := p.DTS
	if s == "" || s == "N/A" {
		s = p.PTS
	}
	v, _ := strconv.ParseFloat(s, 64)
	return v
}

// Probe lists the streams of url.
func Probe(ctx context.Context, url string) ([]Stream, error) {
	var out struct{ Streams []Stream }
	_, err := probeJSON(ctx, &out, "-show_entries", "stream=codec_type,codec_name,width,height", url)
	return out.Streams, err
}

// Packets reads the first span of media from url and lists its packets.
func Packets(ctx context.Context, url string, span time.Duration) ([]Packet, error) {
	var out struct{ Packets []Packet }
	_, err := probeJSON(ctx, &out, "-show_entries", "packet=codec_type,pts_time,dts_time,flags",
		"-read_intervals", "%+"+strconv.FormatFloat(span.Seconds(), 'f', 1, 64), url)
	return out.Packets, err
}

// DecodedFrames decodes the first span of url (ffprobe -count_frames) and returns how
// many frames it decoded per codec type ("video", "audio"); an error the demuxer or the
// decoders log is an error.
func DecodedFrames(ctx context.Context, url string, span time.Duration) (map[string]int, error) {
	var out struct {
		Streams []struct {
			CodecType string `json:"codec_type"`
			Frames    string `json:"nb_read_frames"`
		}
	}
	logged, err := probeJSON(ctx, &out, "-count_frames", "-show_entries", "stream=codec_type,nb_read_frames",
		"-read_intervals", "%+"+strconv.FormatFloat(span.Seconds(), 'f', 1, 64), url)
	if err != nil {
		return nil, err
	}
	if logged != "" {
		return nil, fmt.Errorf("decoding %s: %s", url, logged)
	}
	frames := map[string]int{}
	for _, s := range out.Streams {
		n, _ := strconv.Atoi(s.Frames)
		frames[s.CodecType] += n
	}
	return frames, nil
}

// probeJSON runs ffprobe with JSON output into v and returns what it logged (errors only).
func probeJSON(ctx context.Context, v any, args ...string) (string, error) {
	args = append([]string{"-v", "error", "-rw_timeout", "10000000", "-of", "json"}, args...)
	cmd := exec.CommandContext(ctx, "ffprobe", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return stderr.String(), fmt.Errorf("ffprobe %v: %w: %s", args, err, stderr.String())
	}
	return stderr.String(), json.Unmarshal(out, v)
}

// Timeline summarizes packets of one codec type: count, first and last time (s), and
// whether time ever went backwards.
type Timeline struct {
	Count       int
	First, Last float64
	Backwards   int
}

// TimelineOf builds the Timeline of packets of codecType ("video" or "audio").
func TimelineOf(pkts []Packet, codecType string) Timeline {
	var tl Timeline
	for _, p := range pkts {
		if p.CodecType != codecType {
			continue
		}
		s := p.Seconds()
		if tl.Count == 0 {
			tl.First = s
		} else if s < tl.Last {
			tl.Backwards++
		}
		tl.Last = s
		tl.Count++
	}
	return tl
}

// CheckPlayable probes url for H.264 320x240 + AAC and checks that a few seconds of its
// packets advance without going backwards.
func CheckPlayable(t testing.TB, url string, minTime float64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	streams, err := Probe(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var video, audio bool
	for _, s := range streams {
		switch {
		case s.CodecName == "h264" && s.Width == 320 && s.Height == 240:
			video = true
		case s.CodecName == "aac":
			audio = true
		}
	}
	if !video || !audio {
		t.Fatalf("%s: want h264 320x240 + aac, got %+v", url, streams)
	}
	pkts, err := Packets(ctx, url, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	v, a := TimelineOf(pkts, "video"), TimelineOf(pkts, "audio")
	if v.Count < 30 || a.Count < 30 || v.Last-v.First < 1.5 || v.Backwards > 0 || a.Backwards > 0 {
		t.Fatalf("%s: timestamps do not advance: video %+v audio %+v", url, v, a)
	}
	if v.First < minTime {
		t.Fatalf("%s: first video time %.3f s, want >= %.3f s", url, v.First, minTime)
	}
}
