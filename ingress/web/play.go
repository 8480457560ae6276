package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"peer/ingress/admit"
	"peer/media"
	"peer/media/flv"
	"peer/media/hls"
	"peer/media/netio"
	"peer/placement/dataplane"
)

func (s *Server) media(w http.ResponseWriter, r *http.Request) {
	app := r.PathValue("app")
	name, ext := splitMedia(r.PathValue("file"))
	for _, n := range []string{app, name} {
		if err := media.ValidateName(n); err != nil {
			s.Log.Info("http request refused: bad stream name", zap.String("peer", r.RemoteAddr), zap.String("path", r.URL.Path), zap.Error(err))
			http.Error(w, "bad stream name: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	if s.redirect(w, r, app, name) {
		return
	}
	switch ext {
	case ".flv":
		s.playFLV(w, r, app, name)
	case ".m3u8":
		s.playlist(w, r, app, name)
	default:
		http.NotFound(w, r)
	}
}

const flvResponseHead = "HTTP/1.1 200 OK\r\n" +
	"Content-Type: video/x-flv\r\n" +
	"Access-Control-Allow-Origin: *\r\n" +
	"Cache-Control: no-cache\r\n" +
	"Connection: close\r\n\r\n"

// playFLV takes the connection over from net/http so tags go out with writev straight
// from the shared tag buffers (no chunked-encoding copy per player), and hands it to a
// goroutine of its own: net/http's connection state and its grown stack are freed, which
// is most of what a player would otherwise cost in memory. The session holds a
// max_connections slot until it ends.
func (s *Server) playFLV(w http.ResponseWriter, r *http.Request, app, name string) {
	corsHeaders(w) // a refusal is readable by a browser player too
	if !s.Limit.Acquire(r.RemoteAddr) {
		http.Error(w, "max_connections reached", http.StatusServiceUnavailable)
		return
	}
	// Until the session's goroutine owns the slot, returning gives it back.
	owned := false
	defer func() {
		if !owned {
			s.Limit.Release()
		}
	}()
	player, client, err := s.subscribe(r, app, name)
	if err != nil {
		playError(w, err)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		player.Close()
		http.Error(w, "streaming needs HTTP/1.1", http.StatusHTTPVersionNotSupported)
		return
	}
	if brw.Reader.Buffered() > 0 {
		player.Close()
		conn.Close() // a client that pipelines after a live stream request is not a player
		return
	}
	owned = true
	conn.SetReadDeadline(time.Time{})
	who := []zap.Field{zap.String("stream", app+"/"+name), zap.String("peer", r.RemoteAddr), zap.String("kind", "flv-play")}
	s.Log.Info("play start", who...)
	s.wg.Add(1)
	d := &flvPlay{srv: s, conn: conn, player: player, client: client, who: who, start: time.Now()}
	d.deliver()
	go d.await()
}

// subscribe readies the route of app/name, admits the player (tokens, on_play) and
// attaches it; client is what its on_stop reports, nil for a cluster link.
func (s *Server) subscribe(r *http.Request, app, name string) (*media.Player, *admit.Client, error) {
	internal := false
	if s.Router != nil {
		var err error
		if internal, err = s.Router.Play(app, name, r.URL.RawQuery); err != nil {
			return nil, nil, err
		}
	}
	var client *admit.Client
	if !internal {
		c := s.client(r, app, name, "flv")
		if err := s.Admit.Play(r.Context(), c); err != nil {
			return nil, nil, err
		}
		if s.Admit != nil {
			client = &c
		}
	}
	p, err := s.Hub.Play(app, name, media.PlayOptions{Kind: "flv-play", Remote: r.RemoteAddr})
	if err != nil && client != nil {
		s.Admit.Stop(*client)
	}
	return p, client, err
}

// client describes an HTTP player to admission, as SRS's hooks describe one.
func (s *Server) client(r *http.Request, app, name, proto string) admit.Client {
	c := admit.Client{ID: proto + "-" + strconv.FormatUint(s.sessions.Add(1), 10), IP: r.RemoteAddr, App: app, Stream: name,
		TcURL: "http://" + r.Host + "/" + app, PageURL: r.Referer()}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		c.IP = host
	}
	if r.URL.RawQuery != "" {
		c.Param = "?" + r.URL.RawQuery
	}
	return c
}

// playError answers a player the node cannot serve.
func playError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, media.ErrNoStream):
		http.Error(w, err.Error(), http.StatusNotFound)
	case errors.Is(err, media.ErrTooManyWaiting):
		w.Header().Set("Retry-After", "5")
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	case errors.Is(err, dataplane.ErrLinkRefused), admit.IsDenied(err):
		http.Error(w, err.Error(), http.StatusForbidden)
	default:
		http.Error(w, err.Error(), http.StatusBadRequest)
	}
}

// flvPlay is one HTTP-FLV player's delivery, from its response head to its stop line.
type flvPlay struct {
	srv     *Server
	conn    net.Conn
	player  *media.Player
	client  *admit.Client // what on_stop reports; nil for a cluster link
	who     []zap.Field   // the fields rather than a logger With them: that holds ~1 KiB
	start   time.Time
	unwatch func() bool // stops the server's context ending the player; nil when the head's write failed
	ended   chan error  // the player's end
}

// deliver sends the response head and hands the player to the fan-out (Serve).
func (d *flvPlay) deliver() {
	p := d.player
	d.ended = make(chan error, 1)
	out := &flvSink{w: netio.New(mediaWriter(d.conn), d.srv.WriteTimeout)}
	head := [][]byte{flv.AppendFileHeader([]byte(flvResponseHead), p.Stream().FLVFlags())}
	n, err := out.w.Write(head)
	p.Sent(int(n))
	if err != nil {
		p.Close()
		d.ended <- err
		d.conn.Close()
		return
	}
	// The server's end ends the player; its connection is no longer the HTTP server's.
	d.unwatch = context.AfterFunc(d.srv.ctx, func() { p.End(d.srv.ctx.Err()) })
	p.Serve(out, out.write, func(err error) {
		d.ended <- err
		d.conn.Close() // ends await's wait
	})
}

// await waits until the client hangs up, or the player ended and closed the connection
// (the client sends nothing after its request), and then ends the delivery. It is the
// whole of a goroutine parked in a few small frames, so it runs on the smallest stack
// Go gives: the only goroutine a player that keeps up holds (netio.WaitReadable).
func (d *flvPlay) await() {
	if raw := netio.RawConn(mediaWriter(d.conn)); raw != nil {
		netio.WaitReadable(raw)
	} else {
		var b [1]byte
		d.conn.Read(b[:])
	}
	d.stop()
}

// stop ends the player, logs its stop line and gives back its slot.
func (d *flvPlay) stop() {
	s := d.srv
	if d.unwatch != nil {
		d.unwatch()
		d.player.End(context.Canceled) // the client hung up
	}
	err := <-d.ended
	d.conn.Close()
	s.Log.Info("play stop", append(d.who, zap.Uint64("bytes_out", d.player.BytesOut()), zap.Duration("duration", time.Since(d.start)), zap.NamedError("reason", err))...)
	if d.client != nil {
		s.Admit.Stop(*d.client)
	}
	s.Limit.Release()
	s.wg.Done()
}

// flvSink writes FLV tags, whose bytes are the shared tag buffers themselves. The
// player's state hands the connection either to the fan-out (TryWrite) or to the
// player's goroutine, never to both.
type flvSink struct {
	w *netio.Writer
}

// vectors appends the tags' bytes to iov (netio.Vectors' scratch).
func vectors(iov [][]byte, tags []*flv.Tag) [][]byte {
	for _, t := range tags {
		iov = append(iov, t.Raw)
	}
	return iov
}

// write is the player's blocking write (media.Player.Serve).
func (f *flvSink) write(tags []*flv.Tag) (int, error) {
	iov := netio.Vectors()
	defer netio.PutVectors(iov)
	*iov = vectors(*iov, tags)
	n, err := f.w.Write(*iov)
	if err != nil {
		err = fmt.Errorf("write: %w", err)
	}
	return int(n), err
}

// TryWrite is the media.Sink of an HTTP-FLV player.
func (f *flvSink) TryWrite(tags []*flv.Tag) (int, media.SinkResult, error) {
	iov := netio.Vectors()
	defer netio.PutVectors(iov)
	*iov = vectors(*iov, tags)
	n, complete, err := f.w.TryWrite(*iov)
	return n, media.WriteResult(complete), err
}

func corsHeaders(w http.ResponseWriter) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
}

// hlsWait is how long a playlist request waits for a stream this node starts pulling
// (or whose first segment is not complete yet) before answering 404.
const hlsWait = 8 * time.Second

// playlist answers at once with 404 for a stream no node publishes: HLS players
// retry, so waiting would only let a flood of unknown names pile up. An HLS request
// holds a max_connections slot while it is served.
func (s *Server) playlist(w http.ResponseWriter, r *http.Request, app, name string) {
	corsHeaders(w)
	if !s.Limit.Acquire(r.RemoteAddr) {
		http.Error(w, "max_connections reached", http.StatusServiceUnavailable)
		return
	}
	defer s.Limit.Release()
	_, m, err := hls.Watch(s.Hub, app, name)
	if err != nil {
		playError(w, err)
		return
	}
	if s.Router != nil {
		s.Router.Play(app, name, r.URL.RawQuery)
	}
	if err := s.admitHLS(r, app, name); err != nil {
		playError(w, err)
		return
	}
	body, ok := m.Playlist()
	for deadline := time.Now().Add(hlsWait); !ok && time.Now().Before(deadline) && r.Context().Err() == nil; {
		time.Sleep(100 * time.Millisecond)
		body, ok = m.Playlist()
	}
	if !ok {
		http.Error(w, "playlist not ready", http.StatusNotFound)
		return
	}
	if s.Admit.PlayTokens(app) {
		body = withSegmentToken(body, r.URL.Query().Get("token"))
	}
	w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(body)
}

// admitHLS admits a playlist request. HLS has no connection to hold a session: a viewer
// (an address asking for a stream's playlist) is a session from its first request until
// it stops asking (hlsViewers), so on_play runs at its first request and on_stop when it
// expires; a token, when required, is checked on every request.
func (s *Server) admitHLS(r *http.Request, app, name string) error {
	stream := app + "/" + name
	c := s.client(r, app, name, "hls")
	c.ID = hlsClientID(stream, c.IP)
	if err := s.Admit.PlayToken(c); err != nil {
		return err
	}
	if !s.hls.note(stream, r.RemoteAddr, time.Now()) {
		return nil
	}
	if err := s.Admit.Play(r.Context(), c); err != nil {
		s.hls.forget(stream, r.RemoteAddr)
		return err
	}
	s.Log.Info("play start", zap.String("stream", stream), zap.String("peer", c.IP), zap.String("kind", "hls-play"))
	return nil
}

// hlsClientID names an HLS viewer the same way at its on_play and its on_stop.
func hlsClientID(stream, ip string) string {
	h := fnv.New64a()
	h.Write([]byte(stream + "\x00" + ip))
	return "hls-" + strconv.FormatUint(h.Sum64(), 36)
}

// reportEndedHLS ends the sessions of the HLS viewers that stopped asking (an access line,
// on_stop), until ctx ends.
func (s *Server) reportEndedHLS(ctx context.Context) {
	t := time.NewTicker(hlsViewerWindow / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, v := range s.hls.expire(now) {
				s.Log.Info("play stop", zap.String("stream", v.stream), zap.String("peer", v.ip), zap.String("kind", "hls-play"),
					zap.Uint64("bytes_out", v.bytes), zap.Duration("duration", v.last.Sub(v.first)),
					zap.String("reason", "no playlist request for "+hlsViewerWindow.String()))
				app, name, _ := strings.Cut(v.stream, "/")
				s.Admit.Stop(admit.Client{ID: hlsClientID(v.stream, v.ip), IP: v.ip, App: app, Stream: name})
			}
		}
	}
}

// withSegmentToken appends the playlist's ?token= to its segment URIs, so that a
// player's segment requests carry it (players resolve them relative to the playlist
// and drop its query).
func withSegmentToken(playlist []byte, token string) []byte {
	if token == "" {
		return playlist
	}
	q := "?token=" + url.QueryEscape(token)
	out := make([]byte, 0, len(playlist)+16*len(q))
	for line := range bytes.Lines(playlist) {
		body := bytes.TrimRight(line, "\r\n")
		if len(body) == 0 || body[0] == '#' {
			out = append(out, line...)
			continue
		}
		out = append(append(append(out, body...), q...), line[len(body):]...)
	}
	return out
}

func (s *Server) segment(w http.ResponseWriter, r *http.Request) {
	corsHeaders(w)
	if !s.Limit.Acquire(r.RemoteAddr) {
		http.Error(w, "max_connections reached", http.StatusServiceUnavailable)
		return
	}
	defer s.Limit.Release()
	app, name := r.PathValue("app"), r.PathValue("stream")
	if err := s.Admit.PlayToken(s.client(r, app, name, "hls")); err != nil {
		playError(w, err)
		return
	}
	_, m, err := hls.Watch(s.Hub, app, name)
	if err != nil {
		playError(w, err)
		return
	}
	body, release, ok := m.Segment(r.PathValue("segment"))
	if !ok {
		http.Error(w, "no such segment", http.StatusNotFound)
		return
	}
	defer release()
	s.hls.sent(app+"/"+name, r.RemoteAddr, len(body))
	w.Header().Set("Content-Type", "video/mp2t")
	// A segment never changes once listed, so caches may keep it for the window's life.
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.Write(body)
}

// redirect sends the player to another node of the stream when this one is full.
func (s *Server) redirect(w http.ResponseWriter, r *http.Request, app, name string) bool {
	if s.Router == nil {
		return false
	}
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	addr, ok := s.Router.Redirect(app, name, ip)
	if !ok {
		return false
	}
	u := *r.URL
	u.Scheme, u.Host = "http", addr
	corsHeaders(w)
	s.Log.Info("player redirected: node full", zap.String("stream", app+"/"+name), zap.String("peer", r.RemoteAddr), zap.String("to", addr))
	http.Redirect(w, r, u.String(), http.StatusFound)
	return true
}
