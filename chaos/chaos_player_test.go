package chaos

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/message"
)

// A streaming player for the chaos run: unlike loadclient (which reports at the end of
// a run) it records every session live, so the harness can judge a disconnect or a
// stall the moment it happens, excuse it when the player's node was faulted, and
// reconnect.

type chaosPlayer struct {
	h      *harness
	id     int
	node   string // name of the node it plays from (its address is looked up per session)
	stream string
	proto  string // rtmp, flv, hls

	mu          sync.Mutex
	connected   bool
	sessStart   time.Time
	lastData    time.Time
	stallFlag   bool // a stall of this session was already reported
	lastV       int64
	lastA       int64
	haveV       bool
	haveA       bool
	frames      int64
	bytes       int64
	sessions    int
	excused     int // sessions ended by a fault on the player's node
	maxGap      time.Duration
	skips       int
	lastSeq     int64 // HLS: highest media sequence number seen, -1 none
	hlsFailFrom time.Time
}

func (p *chaosPlayer) label() string {
	return fmt.Sprintf("player#%d %s %s@%s", p.id, p.proto, p.stream, p.node)
}

func (p *chaosPlayer) run(ctx context.Context) {
	for ctx.Err() == nil {
		addr, ok := p.h.nodeAddrs(p.node)
		if !ok { // node down: wait for its restart
			sleepCtx(ctx, 500*time.Millisecond)
			continue
		}
		p.mu.Lock()
		p.sessStart, p.connected, p.stallFlag, p.haveV, p.haveA, p.lastSeq = time.Now(), false, false, false, false, -1
		p.hlsFailFrom = time.Time{}
		p.mu.Unlock()
		var err error
		switch p.proto {
		case "flv":
			err = p.playFLV(ctx, "http://"+addr.http+"/"+p.stream+".flv")
		case "rtmp":
			err = p.playRTMP(ctx, addr.rtmp)
		case "hls":
			err = p.playHLS(ctx, "http://"+addr.http+"/"+p.stream+".m3u8", "http://"+addr.http+"/"+appOf(p.stream)+"/")
		}
		p.mu.Lock()
		was, start := p.connected, p.sessStart
		p.connected = false
		p.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if was {
			p.mu.Lock()
			p.sessions++
			p.mu.Unlock()
			if p.h.excused(p.node, p.stream, start) {
				p.mu.Lock()
				p.excused++
				p.mu.Unlock()
			} else {
				p.h.violate("player-disconnected", p.label(),
					fmt.Sprintf("%s disconnected on a healthy node after %v: %v", p.label(), time.Since(start).Round(time.Millisecond), err))
			}
		}
		sleepCtx(ctx, 500*time.Millisecond)
	}
}

func appOf(stream string) string {
	if i := strings.Index(stream, "/"); i > 0 {
		return stream[:i]
	}
	return stream
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// data records n bytes arriving now.
func (p *chaosPlayer) data(n int) {
	now := time.Now()
	p.mu.Lock()
	if !p.lastData.IsZero() && p.connected {
		if g := now.Sub(p.lastData); g > p.maxGap {
			p.maxGap = g
		}
	}
	p.connected = true
	p.lastData = now
	p.bytes += int64(n)
	p.mu.Unlock()
}

// media records a decoded video (video=true) or audio timestamp in ms.
func (p *chaosPlayer) media(video bool, ts int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if video {
		if p.haveV {
			if ts < p.lastV {
				p.mu.Unlock()
				p.h.violate("timestamp-backwards", p.label(), fmt.Sprintf("%s: video timestamp went back %d -> %d ms", p.label(), p.lastV, ts))
				p.mu.Lock()
			} else if ts-p.lastV > 1000 {
				p.skips++
			}
		}
		p.haveV, p.lastV = true, ts
		p.frames++
		return
	}
	if p.haveA && ts < p.lastA {
		p.mu.Unlock()
		p.h.violate("timestamp-backwards", p.label(), fmt.Sprintf("%s: audio timestamp went back %d -> %d ms", p.label(), p.lastA, ts))
		p.mu.Lock()
	}
	p.haveA, p.lastA = true, ts
}

// stalled reports how long a connected session has had no data.
func (p *chaosPlayer) stalled(now time.Time) (time.Duration, time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.connected || p.stallFlag {
		return 0, time.Time{}, false
	}
	return now.Sub(p.lastData), p.sessStart, true
}

func (p *chaosPlayer) markStall() {
	p.mu.Lock()
	p.stallFlag = true
	p.mu.Unlock()
}

type deadlineConn struct {
	net.Conn
	p       *chaosPlayer
	timeout time.Duration
}

func (c *deadlineConn) Read(b []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.p.data(n)
	}
	return n, err
}

const playerReadTimeout = 20 * time.Second

func (p *chaosPlayer) playFLV(ctx context.Context, u string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &deadlineConn{Conn: c, p: p, timeout: playerReadTimeout}, nil
	}, ResponseHeaderTimeout: 5 * time.Second}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		p.mu.Lock()
		p.connected = false
		p.mu.Unlock()
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		p.mu.Lock()
		p.connected = false
		p.mu.Unlock()
		return fmt.Errorf("http %d", resp.StatusCode)
	}
	return readFLV(bufio.NewReaderSize(resp.Body, 64<<10), func(typ byte, ts uint32, d []byte) bool {
		switch typ {
		case 9:
			if len(d) >= 2 && d[0]&0x80 == 0 && d[0]&0x0f == 7 && d[1] == 1 {
				p.media(true, int64(ts))
			}
		case 8:
			if len(d) >= 2 && (d[0]>>4 != 10 || d[1] == 1) {
				p.media(false, int64(ts))
			}
		}
		return true
	})
}

var errStop = errors.New("stopped")

// readFLV parses an FLV byte stream, calling tag for each tag with its first bytes
// until tag returns false (errStop).
func readFLV(r *bufio.Reader, tag func(typ byte, ts uint32, d []byte) bool) error {
	h := make([]byte, 9)
	if _, err := io.ReadFull(r, h); err != nil {
		return err
	}
	if string(h[:3]) != "FLV" {
		return errors.New("not FLV")
	}
	if _, err := r.Discard(int(binary.BigEndian.Uint32(h[5:9])) - 9 + 4); err != nil {
		return err
	}
	th := make([]byte, 11)
	for {
		if _, err := io.ReadFull(r, th); err != nil {
			return err
		}
		size := int(th[1])<<16 | int(th[2])<<8 | int(th[3])
		ts := uint32(th[4])<<16 | uint32(th[5])<<8 | uint32(th[6]) | uint32(th[7])<<24
		if size > 16<<20 {
			return fmt.Errorf("flv tag of %d bytes", size)
		}
		head, _ := r.Peek(min(size, 2))
		d := append([]byte(nil), head...)
		if !tag(th[0]&0x1f, ts, d) {
			return errStop
		}
		if _, err := r.Discard(size + 4); err != nil {
			return err
		}
	}
}

func (p *chaosPlayer) playRTMP(ctx context.Context, addr string) error {
	u := &url.URL{Scheme: "rtmp", Host: addr, Path: "/" + appOf(p.stream), Fragment: strings.TrimPrefix(p.stream, appOf(p.stream)+"/")}
	c := &gortmplib.Client{URL: u, DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		conn, err := (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, network, a)
		if err != nil {
			return nil, err
		}
		return &deadlineConn{Conn: conn, p: p, timeout: playerReadTimeout}, nil
	}}
	ictx, cancel := context.WithTimeout(ctx, 8*time.Second)
	err := c.Initialize(ictx)
	cancel()
	if err != nil {
		p.mu.Lock()
		p.connected = false // handshake bytes are not a session
		p.mu.Unlock()
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, c.Close)
	defer stop()
	for {
		msg, err := c.Read()
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *message.Video:
			if m.Type == message.VideoTypeAU {
				p.media(true, m.DTS.Milliseconds())
			}
		case *message.Audio:
			if m.Codec != message.CodecMPEG4Audio || m.AACType == message.AudioAACTypeAU {
				p.media(false, m.DTS.Milliseconds())
			}
		}
	}
}

var hlsClient = &http.Client{Timeout: 4 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}

// playHLS polls the playlist once a second, checks that media sequence numbers never
// go back and never skip segments, and downloads every new segment.
func (p *chaosPlayer) playHLS(ctx context.Context, playlist, base string) error {
	for ctx.Err() == nil {
		if p.h.excused(p.node, p.stream, p.sessStartTime()) {
			return errors.New("node faulted")
		}
		body, err := httpGet(ctx, playlist)
		now := time.Now()
		if err != nil {
			p.mu.Lock()
			connected := p.connected
			if connected && p.hlsFailFrom.IsZero() {
				p.hlsFailFrom = now
			}
			failing := !p.hlsFailFrom.IsZero() && now.Sub(p.hlsFailFrom) > 10*time.Second
			p.mu.Unlock()
			if !connected {
				return err // never got a playlist: not a session yet
			}
			if failing {
				return fmt.Errorf("playlist failing for 10 s: %w", err)
			}
			sleepCtx(ctx, time.Second)
			continue
		}
		seq, segs := parsePlaylist(body)
		p.mu.Lock()
		p.hlsFailFrom = time.Time{}
		last := p.lastSeq
		p.mu.Unlock()
		if len(segs) > 0 {
			top := seq + int64(len(segs)) - 1
			switch {
			case p.h.inGrace(p.node): // a node just back from a fault catches up
			case last >= 0 && top < last:
				p.h.violate("hls-sequence", p.label(), fmt.Sprintf("%s: media sequence went back from %d to %d", p.label(), last, top))
			case last >= 0 && seq > last+1:
				p.h.violate("hls-sequence", p.label(), fmt.Sprintf("%s: segments %d..%d skipped (playlist starts at %d)", p.label(), last+1, seq-1, seq))
			}
			for i, s := range segs {
				n := seq + int64(i)
				if n <= last {
					continue
				}
				if last >= 0 || i == len(segs)-1 { // first playlist: only the newest segment
					b, err := httpGet(ctx, base+s)
					if err == nil && len(b) > 0 {
						p.data(len(b)) // progress = a new segment downloaded
						p.mu.Lock()
						p.frames++
						p.mu.Unlock()
					}
				}
			}
			p.mu.Lock()
			if top > p.lastSeq {
				p.lastSeq = top
			}
			p.mu.Unlock()
		}
		sleepCtx(ctx, time.Second)
	}
	return ctx.Err()
}

func (p *chaosPlayer) sessStartTime() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sessStart
}

func httpGet(ctx context.Context, u string) ([]byte, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := hlsClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("http %d", resp.StatusCode)
	}
	return b, nil
}

// parsePlaylist returns the media sequence number and the segment URIs.
func parsePlaylist(b []byte) (int64, []string) {
	var seq int64
	var segs []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"):
			seq, _ = strconv.ParseInt(strings.TrimPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"), 10, 64)
		case l != "" && !strings.HasPrefix(l, "#"):
			segs = append(segs, l)
		}
	}
	return seq, segs
}

// probeLive reports whether stream flows live over HTTP-FLV at httpAddr: video frames
// arriving without a wall-clock pause over 300 ms for at least 400 ms, timestamps
// advancing, within timeout (a cached GOP of a dead stream arrives in one burst and
// does not count). It returns when that run of frames began: the stream flowed from then.
func probeLive(ctx context.Context, httpAddr, stream string, timeout time.Duration) (bool, time.Time) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/"+stream+".flv", nil)
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return false, time.Time{}
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return false, time.Time{}
	}
	var runStart, prev time.Time
	var runTS uint32
	err = readFLV(bufio.NewReader(resp.Body), func(typ byte, ts uint32, d []byte) bool {
		if typ != 9 || len(d) < 2 || d[1] != 1 {
			return true
		}
		now := time.Now()
		if runStart.IsZero() || now.Sub(prev) > 300*time.Millisecond {
			runStart, runTS = now, ts
		}
		prev = now
		return now.Sub(runStart) < 400*time.Millisecond || ts <= runTS
	})
	return err == errStop, runStart
}
