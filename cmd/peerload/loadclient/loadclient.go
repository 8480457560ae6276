// Package loadclient plays one live stream many times at once, over HTTP-FLV or RTMP,
// and records what each player received. cmd/peerload is its command line; cmd/peerbench
// uses it in-process for time-to-first-frame probes.
//
// A player is one goroutine with one bounded read buffer. HTTP-FLV tag headers are
// parsed in place from the bufio buffer (Peek/Discard), so a player allocates nothing
// per tag; RTMP goes through gortmplib's client, which allocates per message.
package loadclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/message"

	"peer/media/flv"
)

// Limits that keep a run bounded whatever the flags say.
const (
	MaxPlayers  = 20000
	MaxDuration = 30 * time.Minute
)

// Config describes one load run.
type Config struct {
	URL      string        // http://host:port/app/stream.flv or rtmp://host:port/app/stream
	Players  int           // concurrent players
	Duration time.Duration // whole run, ramp included
	Ramp     time.Duration // players start evenly spread over this time
	// DialTimeout bounds connecting and the request/play handshake (default 10 s).
	DialTimeout time.Duration
	// ReadTimeout is the longest silence before a player counts as disconnected
	// (default 10 s).
	ReadTimeout time.Duration
	// BufSize is each HTTP player's read buffer (default 32 KiB).
	BufSize int
	// FirstFrameOnly stops each player at its first video frame (TTFF probes).
	FirstFrameOnly bool
}

func (c *Config) defaults() error {
	if c.Players <= 0 {
		c.Players = 1
	}
	if c.Players > MaxPlayers {
		return fmt.Errorf("at most %d players", MaxPlayers)
	}
	if c.Duration <= 0 || c.Duration > MaxDuration {
		return fmt.Errorf("duration must be in (0, %v]", MaxDuration)
	}
	if c.Ramp < 0 || c.Ramp >= c.Duration {
		return fmt.Errorf("ramp must be in [0, duration)")
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 10 * time.Second
	}
	if c.BufSize < 4096 {
		c.BufSize = 32 << 10
	}
	return nil
}

// Player is what one player saw. Times are from the start of its dial.
type Player struct {
	Connected   bool          // the server accepted the play (HTTP 200 / RTMP play status)
	TTFB        time.Duration // first byte from the server; 0 if none
	TTFF        time.Duration // first video frame (not a sequence header); 0 if none
	Bytes       int64         // everything read from the socket
	Tags        int64         // FLV tags / RTMP media and data messages
	VideoFrames int64
	AudioFrames int64
	FirstTS     int64 // ms, first video frame
	LastTS      int64 // ms, last video frame
	// Backwards: a video or an audio timestamp lower than the previous one of the same
	// track (tracks are checked separately: interleaving may legitimately differ).
	Backwards bool
	// Skips counts forward jumps of over 1 s between consecutive video frames: the
	// server dropped this player ahead to a newer keyframe.
	Skips  int
	MaxGap time.Duration // longest wall-clock wait between two tags, after the first
	// Disconnected: the stream ended or failed before the run did.
	Disconnected bool
	Err          string

	firstFrame time.Time // wall time of the first video frame
	lastTag    time.Time
	lastVideo  int64
	lastAudio  int64
	seenAudio  bool
	clock      flv.Unwrapper
}

// FullRate reports whether the media time received covers at least 90% of the wall time
// since the player's first video frame, measured at end.
func (p *Player) FullRate(end time.Time) bool {
	if p.VideoFrames < 2 {
		return false
	}
	wall := end.Sub(p.firstFrame)
	if wall <= 0 {
		return false
	}
	media := time.Duration(p.LastTS-p.FirstTS) * time.Millisecond
	return media >= wall*9/10
}

// WallSinceFirstFrame is the time from the first video frame to end.
func (p *Player) WallSinceFirstFrame(end time.Time) time.Duration {
	if p.firstFrame.IsZero() {
		return 0
	}
	return end.Sub(p.firstFrame)
}

// Result is one run: every player plus its start and end.
type Result struct {
	Config  Config
	Start   time.Time
	End     time.Time
	Players []Player
}

// Run plays cfg.URL with cfg.Players players until cfg.Duration has passed or ctx ends.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, err
	}
	var play func(ctx context.Context, p *Player, u *url.URL, cfg *Config) error
	switch u.Scheme {
	case "http":
		play = playHTTP
	case "rtmp":
		play = playRTMP
		u = rtmpURL(u)
	default:
		return nil, fmt.Errorf("unsupported scheme %q (http or rtmp)", u.Scheme)
	}
	if !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("refusing non-loopback host %q", u.Hostname())
	}

	res := &Result{Config: cfg, Start: time.Now(), Players: make([]Player, cfg.Players)}
	runCtx, cancel := context.WithDeadline(ctx, res.Start.Add(cfg.Duration))
	defer cancel()
	// end is fixed before the players are torn down, so teardown does not count as
	// wall time they failed to fill.
	var endOnce sync.Once
	setEnd := func() { endOnce.Do(func() { res.End = time.Now() }) }
	stopEnd := context.AfterFunc(runCtx, setEnd)
	defer stopEnd()

	var wg sync.WaitGroup
	for i := range res.Players {
		at := res.Start.Add(cfg.Ramp * time.Duration(i) / time.Duration(cfg.Players))
		if d := time.Until(at); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-runCtx.Done():
				t.Stop()
			case <-t.C:
			}
		}
		if runCtx.Err() != nil {
			res.Players = res.Players[:i]
			break
		}
		wg.Add(1)
		go func(p *Player) {
			defer wg.Done()
			err := play(runCtx, p, u, &cfg)
			switch {
			case cfg.FirstFrameOnly && p.TTFF > 0: // the probe is done
			case runCtx.Err() == nil: // ended before the run did
				p.Disconnected = true
				p.Err = classify(err)
			case !p.Connected:
				p.Err = classify(err)
			}
		}(&res.Players[i])
	}
	if cfg.FirstFrameOnly {
		wg.Wait()
		setEnd()
		return res, nil
	}
	<-runCtx.Done()
	setEnd()
	wg.Wait()
	return res, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// rtmpURL turns rtmp://host/app/stream into gortmplib's rtmp://host/app#stream.
func rtmpURL(u *url.URL) *url.URL {
	nu := *u
	if nu.Fragment == "" {
		if i := strings.LastIndex(nu.Path, "/"); i > 0 {
			nu.Path, nu.Fragment = nu.Path[:i], nu.Path[i+1:]
		}
	}
	return &nu
}

// countConn counts bytes read and notes when the first one arrived.
type countConn struct {
	net.Conn
	p     *Player
	start time.Time
}

func (c *countConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		if c.p.Bytes == 0 {
			c.p.TTFB = time.Since(c.start)
		}
		c.p.Bytes += int64(n)
	}
	return n, err
}

// deadline re-arms a connection's read deadline at most once a second, so a tag costs
// no timer update.
type deadline struct {
	conn    net.Conn
	timeout time.Duration
	armed   time.Time
}

func (d *deadline) touch(now time.Time) {
	if now.Sub(d.armed) >= time.Second {
		d.armed = now
		d.conn.SetReadDeadline(now.Add(d.timeout))
	}
}

func dial(ctx context.Context, p *Player, host string, cfg *Config, start time.Time) (net.Conn, error) {
	d := net.Dialer{Timeout: cfg.DialTimeout}
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	return &countConn{Conn: c, p: p, start: start}, nil
}

func playHTTP(ctx context.Context, p *Player, u *url.URL, cfg *Config) error {
	start := time.Now()
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	conn, err := dial(ctx, p, host, cfg, start)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetDeadline(start.Add(cfg.DialTimeout))
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: peerload\r\nAccept: */*\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return err
	}
	br := bufio.NewReaderSize(conn, cfg.BufSize)
	line, err := br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if f := bytes.Fields(line); len(f) < 2 || !bytes.HasPrefix(f[0], []byte("HTTP/1.")) || string(f[1]) != "200" {
		return fmt.Errorf("http status %q", bytes.TrimSpace(line))
	}
	chunked := false
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(bytes.TrimSpace(k), []byte("Transfer-Encoding")) &&
			bytes.Contains(bytes.ToLower(v), []byte("chunked")) {
			chunked = true
		}
	}
	p.Connected = true
	r := br
	if chunked {
		r = bufio.NewReaderSize(httputil.NewChunkedReader(br), cfg.BufSize)
	}
	conn.SetWriteDeadline(time.Time{})
	dl := &deadline{conn: conn, timeout: cfg.ReadTimeout}
	dl.touch(time.Now())
	return p.readFLV(r, dl, start, cfg.FirstFrameOnly)
}

var errFirstFrame = errors.New("first frame received")

// readFLV parses tags in place in r's buffer.
func (p *Player) readFLV(r *bufio.Reader, dl *deadline, start time.Time, firstOnly bool) error {
	h, err := r.Peek(9)
	if err != nil {
		return err
	}
	if h[0] != 'F' || h[1] != 'L' || h[2] != 'V' {
		return flv.ErrNotFLV
	}
	if _, err := r.Discard(int(binary.BigEndian.Uint32(h[5:9])) + 4); err != nil {
		return err
	}
	for {
		h, err := r.Peek(flv.HeaderLen)
		if err != nil {
			return err
		}
		size := int(h[1])<<16 | int(h[2])<<8 | int(h[3])
		if size > flv.MaxTagData {
			return fmt.Errorf("flv: tag of %d bytes", size)
		}
		if size > 0 {
			n := min(size, 2)
			if h, err = r.Peek(flv.HeaderLen + n); err != nil {
				return err
			}
		}
		now := time.Now()
		dl.touch(now)
		typ := h[0] & 0x1f
		ts := uint32(h[4])<<16 | uint32(h[5])<<8 | uint32(h[6]) | uint32(h[7])<<24
		d := h[flv.HeaderLen:]
		var d0, d1 byte = 0, 0xff
		if len(d) > 0 {
			d0 = d[0]
		}
		if len(d) > 1 {
			d1 = d[1]
		}
		p.tag(now, start, typ, ts, d0, d1, len(d))
		if _, err := r.Discard(flv.HeaderLen + size + flv.TrailerLen); err != nil {
			return err
		}
		if firstOnly && p.TTFF > 0 {
			return errFirstFrame
		}
	}
}

// tag records one tag: typ is the FLV tag type, d0 and d1 the first two data bytes
// (d1 = 0xff when absent), n the data length.
func (p *Player) tag(now, start time.Time, typ uint8, ts uint32, d0, d1 byte, n int) {
	if !p.lastTag.IsZero() {
		if g := now.Sub(p.lastTag); g > p.MaxGap {
			p.MaxGap = g
		}
	}
	p.lastTag = now
	p.Tags++
	t := p.clock.Extend(ts)
	switch typ {
	case flv.TypeVideo:
		if n < 1 {
			return
		}
		if d0&0x80 != 0 { // enhanced RTMP: packet type in the low nibble
			if pt := d0 & 0x0f; pt == 0 || pt == 2 || pt == 4 { // sequence start/end, metadata
				return
			}
		} else if (d0>>4)&7 == 5 || (d0&0x0f == flv.VideoH264 && d1 != 1) { // command frame, AVC header/EOS
			return
		}
		p.video(now, start, t)
	case flv.TypeAudio:
		if n < 1 || (d0>>4 == flv.AudioAAC && d1 != 1) {
			return
		}
		p.audio(t)
	}
}

func (p *Player) video(now, start time.Time, t int64) {
	if p.VideoFrames == 0 {
		p.TTFF = now.Sub(start)
		p.firstFrame = now
		p.FirstTS = t
	} else {
		if t < p.lastVideo {
			p.Backwards = true
		}
		if t-p.lastVideo > 1000 {
			p.Skips++
		}
	}
	p.lastVideo = t
	if t > p.LastTS || p.VideoFrames == 0 {
		p.LastTS = t
	}
	p.VideoFrames++
}

func (p *Player) audio(t int64) {
	if p.seenAudio && t < p.lastAudio {
		p.Backwards = true
	}
	p.seenAudio = true
	p.lastAudio = t
	p.AudioFrames++
}

func playRTMP(ctx context.Context, p *Player, u *url.URL, cfg *Config) error {
	start := time.Now()
	c := &gortmplib.Client{
		URL: u,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dial(ctx, p, addr, cfg, start)
		},
	}
	ictx, icancel := context.WithTimeout(ctx, cfg.DialTimeout)
	err := c.Initialize(ictx)
	icancel()
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, c.Close)
	defer stop()
	p.Connected = true
	dl := &deadline{conn: c.NetConn(), timeout: cfg.ReadTimeout}
	for {
		msg, err := c.Read()
		if err != nil {
			return err
		}
		now := time.Now()
		dl.touch(now)
		switch m := msg.(type) {
		case *message.Video:
			p.tagRTMP(now)
			if m.Type == message.VideoTypeAU {
				p.video(now, start, p.clock.Extend(uint32(m.DTS.Milliseconds())))
			}
		case *message.VideoExCodedFrames:
			p.tagRTMP(now)
			p.video(now, start, p.clock.Extend(uint32(m.DTS.Milliseconds())))
		case *message.VideoExFramesX:
			p.tagRTMP(now)
			p.video(now, start, p.clock.Extend(uint32(m.DTS.Milliseconds())))
		case *message.Audio:
			p.tagRTMP(now)
			if m.Codec != message.CodecMPEG4Audio || m.AACType == message.AudioAACTypeAU {
				p.audio(int64(m.DTS.Milliseconds()))
			}
		case *message.AudioExCodedFrames:
			p.tagRTMP(now)
			p.audio(int64(m.DTS.Milliseconds()))
		case *message.DataAMF0:
			p.tagRTMP(now)
		}
		if cfg.FirstFrameOnly && p.TTFF > 0 {
			return errFirstFrame
		}
	}
}

func (p *Player) tagRTMP(now time.Time) {
	if !p.lastTag.IsZero() {
		if g := now.Sub(p.lastTag); g > p.MaxGap {
			p.MaxGap = g
		}
	}
	p.lastTag = now
	p.Tags++
}

// classify maps an error to a short, address-free reason so they aggregate.
func classify(err error) string {
	if err == nil {
		return ""
	}
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too many open files"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no free local port"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}
