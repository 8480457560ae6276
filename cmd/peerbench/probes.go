package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"time"

	"peer/cmd/peerload/loadclient"
	"peer/media/flv"
)

// tcpCeiling pushes 64 KiB writes from one goroutine to another over 127.0.0.1 for d
// and returns the rate in Gbit/s: the most any delivery figure could reach here.
func tcpCeiling(ctx context.Context, d time.Duration) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	type result struct {
		n   int64
		err error
	}
	got := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		buf := make([]byte, 64<<10)
		var n int64
		for {
			k, err := c.Read(buf)
			n += int64(k)
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				got <- result{n, err}
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 64<<10)
	start := time.Now()
	end := start.Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		if _, err := c.Write(buf); err != nil {
			c.Close()
			return 0, err
		}
	}
	c.Close()
	r := <-got
	if r.err != nil {
		return 0, r.err
	}
	return float64(r.n) * 8 / time.Since(start).Seconds() / 1e9, nil
}

// clipInfo describes the pre-encoded clip.
type clipInfo struct {
	path      string
	seconds   float64 // media duration
	tagsPerS  float64 // audio+video tags per second of media (what a player receives)
	mbps      float64 // tag bytes per second of media
	encodeSec float64
}

// encodeClip makes the 60 s test clip once (reused when path already exists), then reads
// it back to learn its tag rate.
func encodeClip(ctx context.Context, path string) (clipInfo, error) {
	ci := clipInfo{path: path}
	if _, err := os.Stat(path); err != nil {
		start := time.Now()
		tmp := path + ".part.flv"
		cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
			"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
			"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
			"-t", "60",
			"-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
			"-b:v", "1900k", "-maxrate", "2000k", "-bufsize", "2000k", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
			"-c:a", "aac", "-b:a", "96k", "-ac", "2",
			"-f", "flv", tmp)
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp)
			return ci, fmt.Errorf("ffmpeg encode: %w: %s", err, out)
		}
		if err := os.Rename(tmp, path); err != nil {
			return ci, err
		}
		ci.encodeSec = time.Since(start).Seconds()
	}
	f, err := os.Open(path)
	if err != nil {
		return ci, err
	}
	defer f.Close()
	r := flv.NewReader(f)
	var tags, bytes int64
	var first, last int64 = -1, 0
	for {
		t, err := r.Read()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return ci, fmt.Errorf("read clip: %w", err)
		}
		if t.Type != flv.TypeAudio && t.Type != flv.TypeVideo {
			continue
		}
		tags++
		bytes += int64(len(t.Raw))
		if first < 0 {
			first = t.Time
		}
		last = max(last, t.Time)
	}
	ci.seconds = float64(last-first) / 1000
	if ci.seconds < 1 {
		return ci, fmt.Errorf("clip %s holds %.1f s of media", path, ci.seconds)
	}
	ci.tagsPerS = float64(tags) / ci.seconds
	ci.mbps = float64(bytes) * 8 / ci.seconds / 1e6
	return ci, nil
}

// ttffProbe connects n single players one after another and returns each one's time
// to first video frame in ms (failed connects are counted, not timed). Between connects
// it waits 50 ms plus a random part of jitter: without it every connect of a server
// that waits for the next keyframe would start right after one and wait a whole GOP.
func ttffProbe(ctx context.Context, url string, n int, jitter time.Duration) (ms []float64, failed int, lastErr string) {
	for i := 0; i < n && ctx.Err() == nil; i++ {
		res, err := loadclient.Run(ctx, loadclient.Config{URL: url, Players: 1, Duration: 10 * time.Second,
			FirstFrameOnly: true, DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second})
		switch {
		case err != nil:
			failed++
			lastErr = err.Error()
		case len(res.Players) == 1 && res.Players[0].TTFF > 0:
			ms = append(ms, float64(res.Players[0].TTFF)/float64(time.Millisecond))
		default:
			failed++
			if len(res.Players) == 1 {
				lastErr = res.Players[0].Err
			}
		}
		d := 50 * time.Millisecond
		if jitter > 0 {
			d += rand.N(jitter)
		}
		sleep(ctx, d)
	}
	return ms, failed, lastErr
}
