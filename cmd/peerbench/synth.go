package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"peer/media/flv"
	"peer/media/rtmp"
)

// The synthetic stream: H.264-shaped FLV video tags (AVC sequence header first, then
// AVCC NAL units at a synthShape's rate and sizes) whose NAL payload carries a
// marker, a sequence number and the wall clock of the send in unix nanoseconds. A player
// finds the marker in what it receives, so glass-to-glass latency needs no decoding:
// latency = receive time - embedded time (same machine, same clock).

var synthMarker = []byte("PBLT")

// synthHdrBytes: FLV AVC video tag header (5) + NAL length (4) + NAL header (1).
const synthHdrBytes = 5 + 4 + 1

// synthShape is a synthetic stream's frame rate, keyframe interval and tag sizes.
type synthShape struct{ fps, gop, keySize, interSize int }

// latencyShape is the latency and failover stream: (40000 + 24*8000) * 8 / s ~ 1.86 Mbit/s.
var latencyShape = synthShape{fps: 25, gop: 25, keySize: 40000, interSize: 8000}

// defaultAVCC is a real avcC (x264, 640x360 High) used when the clip cannot provide one,
// so muxers that parse SPS/PPS (HLS) accept the synthetic stream.
var defaultAVCC = []byte{0x17, 0, 0, 0, 0,
	0x01, 0x64, 0x00, 0x1e, 0xff, 0xe1, 0x00, 0x1a,
	0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x32, 0x0f, 0x16, 0x2d, 0x96,
	0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0}

// clipAVCC returns the data of the first AVC sequence header tag of the clip.
func clipAVCC(path string) []byte {
	f, err := os.Open(path)
	if err != nil {
		return defaultAVCC
	}
	defer f.Close()
	r := flv.NewReader(f)
	for i := 0; i < 50; i++ {
		t, err := r.Read()
		if err != nil {
			break
		}
		if t.Type == flv.TypeVideo && t.IsSequenceHeader() {
			return append([]byte(nil), t.Data()...)
		}
	}
	return defaultAVCC
}

// frame builds frame i's tag data: a keyframe every gop frames.
func (sh synthShape) frame(i int, seq uint32, now time.Time) []byte {
	size := sh.interSize
	b0, nal := byte(0x27), byte(0x41)
	if i%sh.gop == 0 {
		size, b0, nal = sh.keySize, 0x17, 0x65
	}
	size = max(size, synthHdrBytes+16)
	d := make([]byte, size)
	d[0], d[1] = b0, 1 // AVC NALU, composition time 0
	binary.BigEndian.PutUint32(d[5:], uint32(size-9))
	d[9] = nal
	o := synthHdrBytes
	copy(d[o:], synthMarker)
	binary.BigEndian.PutUint32(d[o+4:], seq)
	binary.BigEndian.PutUint64(d[o+8:], uint64(now.UnixNano()))
	for i := o + 16; i < size; i++ {
		d[i] = byte(i*7 + 1) // never 0: no start-code look-alikes
	}
	return d
}

// parseSynth finds the marker in video tag data and returns seq and send time.
func parseSynth(d []byte) (uint32, time.Time, bool) {
	if len(d) < synthHdrBytes+16 || d[1] != 1 {
		return 0, time.Time{}, false
	}
	o := synthHdrBytes
	if !bytes.Equal(d[o:o+4], synthMarker) {
		i := bytes.Index(d[:min(len(d), 64)], synthMarker)
		if i < 0 || i+16 > len(d) {
			return 0, time.Time{}, false
		}
		o = i
	}
	seq := binary.BigEndian.Uint32(d[o+4:])
	ns := int64(binary.BigEndian.Uint64(d[o+8:]))
	return seq, time.Unix(0, ns), true
}

// synthPublisher publishes the synthetic stream. On a write or dial error it moves on
// to the next address in addrs (wrapping around), as an encoder with a list of ingest
// points would; every (re)connect starts with the sequence header and a keyframe.
type synthPublisher struct {
	addrs       []string
	app, stream string
	avcc        []byte

	mu         sync.Mutex
	connects   []pubEvent
	errs       []pubEvent
	frames     int64
	done       chan struct{}
	lastErr    error
	connected  bool
	firstStart time.Time
}

type pubEvent struct {
	At   time.Time
	Addr string
	Err  string
}

func startSynthPublisher(ctx context.Context, addrs []string, app, stream string, avcc []byte) *synthPublisher {
	p := &synthPublisher{addrs: addrs, app: app, stream: stream, avcc: avcc, done: make(chan struct{})}
	go p.run(ctx)
	return p
}

func (p *synthPublisher) run(ctx context.Context) {
	defer close(p.done)
	start := time.Now()
	p.firstStart = start
	var seq uint32
	ai := 0
	for attempt := 0; ctx.Err() == nil && attempt < 1000; attempt++ {
		addr := p.addrs[ai%len(p.addrs)]
		c, err := rtmp.DialPublish(ctx, addr, p.app, p.stream, 3*time.Second)
		if err != nil {
			p.note(&p.errs, addr, err)
			ai++
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		p.note(&p.connects, addr, nil)
		p.mu.Lock()
		p.connected = true
		p.mu.Unlock()
		err = p.stream1(ctx, c, start, &seq)
		c.Close()
		p.mu.Lock()
		p.connected = false
		p.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		p.note(&p.errs, addr, err)
		ai++
	}
}

// stream1 sends frames on one connection until an error or ctx ends.
func (p *synthPublisher) stream1(ctx context.Context, c *rtmp.Client, start time.Time, seq *uint32) error {
	ms := func() int64 { return time.Since(start).Milliseconds() }
	if _, err := c.WriteTags([]*flv.Tag{flv.NewTag(flv.TypeVideo, ms(), p.avcc)}); err != nil {
		return err
	}
	interval := time.Second / time.Duration(latencyShape.fps)
	next := time.Now()
	for i := 0; ctx.Err() == nil; i++ {
		if err := sleepUntil(ctx, next); err != nil {
			return nil
		}
		next = next.Add(interval)
		if d := time.Until(next); d < -time.Second { // fell far behind: resync the clock
			next = time.Now()
		}
		now := time.Now()
		*seq++
		data := latencyShape.frame(i, *seq, now)
		if _, err := c.WriteTags([]*flv.Tag{flv.NewTag(flv.TypeVideo, now.Sub(start).Milliseconds(), data)}); err != nil {
			return err
		}
		p.mu.Lock()
		p.frames++
		p.mu.Unlock()
		_ = ms
	}
	return nil
}

func (p *synthPublisher) note(list *[]pubEvent, addr string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := pubEvent{At: time.Now(), Addr: addr}
	if err != nil {
		e.Err = err.Error()
		p.lastErr = err
	}
	*list = append(*list, e)
}

func (p *synthPublisher) isConnected() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.connected
}

func (p *synthPublisher) events() (connects, errs []pubEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]pubEvent(nil), p.connects...), append([]pubEvent(nil), p.errs...)
}

// recv is one synthetic frame a player received.
type recv struct {
	At   time.Time
	Sent time.Time
	Seq  uint32
}

// synthPlayer plays the synthetic stream over RTMP or HTTP-FLV and records every frame.
// With reconnect it redials the same URL after an error until ctx ends.
type synthPlayer struct {
	proto, addr, app, stream string
	reconnect                bool
	readTimeout              time.Duration

	bytes atomic.Int64 // media message bodies received (RTMP) / FLV tag data (HTTP-FLV)

	mu          sync.Mutex
	start       time.Time
	frames      []recv
	disconnects []pubEvent
	connects    int
	done        chan struct{}
}

func startSynthPlayer(ctx context.Context, proto, addr, app, stream string, reconnect bool, readTimeout time.Duration) *synthPlayer {
	p := &synthPlayer{proto: proto, addr: addr, app: app, stream: stream, reconnect: reconnect, readTimeout: readTimeout,
		start: time.Now(), done: make(chan struct{})}
	go p.run(ctx)
	return p
}

func (p *synthPlayer) run(ctx context.Context) {
	defer close(p.done)
	for attempt := 0; ctx.Err() == nil && attempt < 1000; attempt++ {
		var err error
		if p.proto == "rtmp" {
			err = p.playRTMP(ctx)
		} else {
			err = p.playFLV(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = io.EOF
		}
		p.mu.Lock()
		p.disconnects = append(p.disconnects, pubEvent{At: time.Now(), Addr: p.addr, Err: shortErr(err)})
		p.mu.Unlock()
		if !p.reconnect {
			return
		}
		sleep(ctx, 100*time.Millisecond)
	}
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 100 {
		s = s[:100]
	}
	return s
}

func (p *synthPlayer) got(d []byte) {
	now := time.Now()
	seq, sent, ok := parseSynth(d)
	if !ok {
		return
	}
	p.mu.Lock()
	p.frames = append(p.frames, recv{At: now, Sent: sent, Seq: seq})
	p.mu.Unlock()
}

func (p *synthPlayer) playRTMP(ctx context.Context) error {
	c, err := rtmp.DialPlay(ctx, p.addr, p.app, p.stream, p.readTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	p.mu.Lock()
	p.connects++
	p.mu.Unlock()
	for {
		msg, err := c.ReadMedia()
		if err != nil {
			return err
		}
		p.bytes.Add(int64(len(msg.Body)))
		if msg.Type == flv.TypeVideo {
			p.got(msg.Body)
		}
	}
}

func (p *synthPlayer) playFLV(ctx context.Context) error {
	d := net.Dialer{Timeout: 3 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetDeadline(time.Now().Add(p.readTimeout))
	fmt.Fprintf(conn, "GET /%s/%s.flv HTTP/1.1\r\nHost: %s\r\nUser-Agent: peerbench\r\n\r\n", p.app, p.stream, p.addr)
	br := bufio.NewReaderSize(conn, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("http %s", resp.Status)
	}
	p.mu.Lock()
	p.connects++
	p.mu.Unlock()
	r := flv.NewReader(&deadlineReader{r: resp.Body, conn: conn, timeout: p.readTimeout})
	for {
		t, err := r.Read()
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.EOF
			}
			return err
		}
		p.bytes.Add(int64(len(t.Data())))
		if t.Type == flv.TypeVideo {
			p.got(t.Data())
		}
	}
}

// deadlineReader re-arms the read deadline before each read.
type deadlineReader struct {
	r       io.Reader
	conn    net.Conn
	timeout time.Duration
}

func (d *deadlineReader) Read(b []byte) (int, error) {
	d.conn.SetReadDeadline(time.Now().Add(d.timeout))
	return d.r.Read(b)
}

// snapshot returns a copy of what the player recorded.
func (p *synthPlayer) snapshot() (frames []recv, disc []pubEvent, connects int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]recv(nil), p.frames...), append([]pubEvent(nil), p.disconnects...), p.connects
}

// received returns the synthetic frames and media bytes received so far, without
// copying the frames.
func (p *synthPlayer) received() (frames int, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.frames), p.bytes.Load()
}

// latencies returns receive - send in ms for frames sent after from.
func latencies(frames []recv, from time.Time) []float64 {
	var out []float64
	for _, f := range frames {
		if f.Sent.Before(from) {
			continue
		}
		out = append(out, float64(f.At.Sub(f.Sent))/float64(time.Millisecond))
	}
	return out
}
