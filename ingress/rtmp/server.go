// Package rtmp is the RTMP server: it accepts connections, runs their sessions
// (connect, publish and play commands), applies the connection limits and client
// admission, and hands publishes and players to the node's Router. The protocol itself
// (messages, commands, the connection writer, the media adapter) is media/rtmp.
//
// It may import media/rtmp and its chunk and handshake layers, the media core,
// placement/dataplane (for the refusal classes its Router returns), ingress/admit,
// ingress/limit and conf/ratelog; never node.
package rtmp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"peer/conf/ratelog"
	"peer/ingress/admit"
	"peer/ingress/limit"
	"peer/media"
	"peer/media/amf0"
	"peer/media/flv"
	"peer/media/ingest"
	"peer/media/netio"
	"peer/media/rtmp"
	"peer/media/rtmp/chunk"
	"peer/media/rtmp/handshake"
	"peer/placement/dataplane"
)

// Router decides where publishes and players go (placement/dataplane implements it).
type Router interface {
	// Publish returns the publisher a session writes into, and what to call when it ends.
	Publish(ctx context.Context, app, name, query, remote string) (*media.Publisher, func(), error)
	// Play readies the node to serve a player; internal marks another node's link.
	Play(app, name, query string) (internal bool, err error)
	// IsLink reports whether a stream query carries a cluster link's claim, which the
	// Router checks itself: admission (tokens, hooks) is for clients, never for links.
	IsLink(query string) bool
}

// Server accepts RTMP publishers and players for a node's hub.
type Server struct {
	Hub          *media.Hub
	Router       Router
	Admit        *admit.Admission // tokens and hooks for clients; nil admits everyone
	Limit        *limit.Limiter
	Log          *zap.Logger
	IOTimeout    time.Duration // publishers and the command phase: longest silence allowed
	WriteTimeout time.Duration // longest a write to a client may block
	IdlePlayer   time.Duration // players send little; their reads get this long deadline

	wg       sync.WaitGroup
	refusals *ratelog.Limiter // sessions a client ended with a protocol error, or refused
	sessions atomic.Uint64    // numbers sessions for their client ids
}

// Reader limits of a server connection. Until a publish is authorized a client sends
// only commands and control messages (ffmpeg's connect is 140 bytes), so anything larger
// than commandLimits allow is refused before it costs memory; an authorized publisher
// gets room for keyframes.
var (
	commandLimits = chunk.Limits{MaxMessage: 64 << 10, MaxBuffered: 128 << 10, MaxChunkStreams: 32}
	mediaLimits   = chunk.DefaultLimits
)

// errHandshake classes a failed handshake for the refusal log.
var errHandshake = errors.New("handshake")

// hubRouter is the Router of a node without a cluster: everything is local.
type hubRouter struct{ hub *media.Hub }

func (h hubRouter) Publish(_ context.Context, app, name, _, remote string) (*media.Publisher, func(), error) {
	pub, err := h.hub.Publish(app, name, remote, media.Origin)
	if err != nil {
		return nil, nil, err
	}
	return pub, pub.Close, nil
}

func (hubRouter) Play(string, string, string) (bool, error) { return false, nil }

func (hubRouter) IsLink(string) bool { return false }

func (s *Server) defaults() {
	if s.Router == nil {
		s.Router = hubRouter{s.Hub}
	}
	if s.IOTimeout == 0 {
		s.IOTimeout = 20 * time.Second
	}
	if s.WriteTimeout == 0 {
		s.WriteTimeout = 10 * time.Second
	}
	if s.IdlePlayer == 0 {
		s.IdlePlayer = 10 * time.Minute
	}
	s.refusals = ratelog.New(s.Log, 0)
}

// Serve accepts connections until ctx ends, then closes them and waits for their
// goroutines.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.defaults()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { <-ctx.Done(); ln.Close() }()
	defer s.wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of file descriptors (a connection flood): that passes as
				// connections close, and must not end the listener, as net/http's does not.
				s.refusals.Warn("accept", "rtmp accept failed: out of file descriptors", zap.Error(err))
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return err
		}
		if !s.Limit.Acquire(c.RemoteAddr().String()) { // logs the refusal, rate-limited
			c.Close()
			continue
		}
		s.wg.Add(1)
		go s.handle(ctx, c) // releases the slot and s.wg
	}
}

// session is one client connection. Reads happen on the connection's goroutine; writes
// go through wmu because a player's writer goroutine and the reader (acks, pings,
// replies) both write.
type session struct {
	srv    *Server
	conn   net.Conn
	raw    syscall.RawConn // conn's, for awaitPlayer; nil when conn is not a socket
	remote string
	cid    string // the session's id in hooks (SRS's client_id)
	start  time.Time

	rtmp.Wire
	wmu sync.Mutex // guards the Wire's writer

	app, tcURL  string
	pageURL     string
	name, query string
	admitted    bool // a client (not a cluster link) admitted by s.srv.Admit: its end is reported
	pub         *media.Publisher
	unpublish   func()
	playDone    chan error
	stopPlay    func()
}

// log is the session's logger: its peer, app and stream as they are known. It is made
// for each line (they are few): a logger kept for the session would hold an encoder and
// its buffer, about 1 KiB per player.
func (ss *session) log() *zap.Logger {
	fields := make([]zap.Field, 1, 3)
	fields[0] = zap.String("peer", ss.remote)
	if ss.app != "" {
		fields = append(fields, zap.String("app", ss.app))
	}
	if ss.name != "" {
		fields = append(fields, zap.String("stream", ss.app+"/"+ss.name))
	}
	return ss.srv.Log.With(fields...)
}

// handle serves one connection, then gives back its max_connections slot and s.wg.
// Once a play starts, the player's reads go on in goroutines of their own and this one
// ends: the handshake and the commands grow a goroutine's stack, and the collector
// shrinks a parked goroutine's stack only when it uses under a quarter of it less the
// 800 bytes of guard, which no reader blocked in a protocol parser does (see
// awaitPlayer).
func (s *Server) handle(ctx context.Context, c net.Conn) {
	ss := &session{srv: s, conn: c, raw: netio.RawConn(c), remote: c.RemoteAddr().String(), start: time.Now(),
		cid: "rtmp-" + strconv.FormatUint(s.sessions.Add(1), 10)}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	end := func(err error) {
		ss.finish(err)
		c.Close()
		stop()
		s.Limit.Release()
		s.wg.Done()
	}
	err := ss.run(ctx, true, false)
	if err == errPlaying {
		go ss.readPlayer(ctx, false, end)
		return
	}
	end(err)
}

// awaitPlayer waits, reading nothing, until the player's connection has a message, has
// hung up or its read deadline passed, and then reads what came. It is the whole of a
// goroutine that blocks in a few small frames, so it runs on the smallest stack Go
// gives (2 KiB; new goroutines start with the average stack the collector scanned):
// a player sends a few acks a minute and waits here the rest of its life, while the
// 4 KiB a reader parked in the chunk parser keeps would be a quarter of what a player
// costs.
func (ss *session) awaitPlayer(ctx context.Context, end func(error)) {
	netio.WaitReadable(ss.raw) // what it reports, the reads that follow report too
	ss.readPlayer(ctx, true, end)
}

// readPlayer reads and handles a player's messages until none is left unread, then
// leaves the next wait to a fresh awaitPlayer goroutine: this one's stack grew.
// Without woken it reads only what the command phase left buffered.
func (ss *session) readPlayer(ctx context.Context, woken bool, end func(error)) {
	if err := ss.run(ctx, false, woken); err != errAwait {
		end(err)
		return
	}
	go ss.awaitPlayer(ctx, end)
}

// errPlaying is run's return when a play started: the caller goes on with readPlayer.
var errPlaying = errors.New("playing")

// errAwait is run's return for a player with nothing left to read: the caller waits
// for the connection with awaitPlayer.
var errAwait = errors.New("await the player's next message")

// run does the handshake (start) and then reads and handles messages until the session
// ends, or, from start, until a play started (errPlaying). A player's run returns
// errAwait once it read what was there, after at least one read when woken.
func (ss *session) run(ctx context.Context, start, woken bool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in RTMP session: %v", r)
		}
	}()
	if start {
		ss.conn.SetDeadline(time.Now().Add(ss.srv.IOTimeout))
		if err := handshake.Server(ss.conn); err != nil {
			return fmt.Errorf("%w: %w", errHandshake, err)
		}
		ss.conn.SetDeadline(time.Time{})
		ss.Init(ss.conn, ss.srv.WriteTimeout, commandLimits, func(n uint32) error { return ss.send(rtmp.Ack(n)) })
	}
	r := ss.ChunkReader()
	for mustRead := woken; ; mustRead = false {
		if start && ss.playDone != nil {
			return errPlaying
		}
		timeout := ss.srv.IOTimeout
		if ss.playDone != nil {
			timeout = ss.srv.IdlePlayer
		}
		ss.conn.SetReadDeadline(time.Now().Add(timeout))
		if !start && !mustRead && ss.raw != nil && r.Unread() == 0 {
			r.Release() // what the player sends next may be minutes away
			return errAwait
		}
		msg, err := r.Read()
		if err != nil {
			if ss.playDone != nil {
				select {
				case perr := <-ss.playDone:
					ss.playDone = nil
					return perr
				default:
				}
			}
			return err
		}
		if done, err := ss.dispatch(ctx, &msg); done || err != nil {
			return err
		}
	}
}

// dispatch handles one message; done ends the session normally.
func (ss *session) dispatch(ctx context.Context, msg *chunk.Message) (done bool, err error) {
	if handled, err := ss.Control(msg, func(m *chunk.Message) error { return ss.send(m) }); handled {
		return false, err
	}
	if msg.Type == rtmp.TypeCommandAMF0 || msg.Type == rtmp.TypeCommandAMF3 {
		cmd, err := rtmp.DecodeCommand(msg.Type, msg.Body)
		if err != nil {
			return false, err
		}
		return ss.command(ctx, cmd)
	}
	// Media before publish is ignored, as SRS does.
	if t, ok := rtmp.MediaTag(msg); ok && ss.pub != nil {
		ingest.Write(ss.pub, t)
	}
	return false, nil
}

func (ss *session) command(ctx context.Context, cmd *rtmp.Command) (bool, error) {
	switch cmd.Name {
	case "connect":
		return false, ss.connect(cmd)
	case "createStream":
		return false, ss.reply(cmd, nil, float64(rtmp.MediaStreamID))
	case "releaseStream", "FCPublish", "FCUnpublish":
		// Flash Media Encoder's calls around publish: acknowledged, as SRS does.
		return false, ss.replyIfAsked(cmd, amf0.Undefined{})
	case "getStreamLength":
		// A player asks for the duration; ffmpeg reads a number ("Unexpected reply on
		// getStreamLength()" otherwise): 0, a live stream has none.
		return false, ss.replyIfAsked(cmd, float64(0))
	case "FCSubscribe":
		// Akamai-style live subscription (librtmp sends it with --live): FMS answers
		// onFCSubscribe; the play that follows does the work.
		msg, err := rtmp.EncodeCommand(rtmp.CSIDCommand, 0, "onFCSubscribe", float64(0), nil, rtmp.Status("status", "NetStream.Play.Start", "Subscribed."))
		if err == nil {
			err = ss.send(msg)
		}
		if err == nil {
			err = ss.replyIfAsked(cmd, amf0.Undefined{})
		}
		return false, err
	case "publish":
		return false, ss.publish(ctx, cmd)
	case "play":
		return false, ss.play(ctx, cmd)
	case "deleteStream", "closeStream":
		return true, nil
	}
	ss.log().Debug("ignoring RTMP command", zap.String("command", cmd.Name))
	return false, nil
}

func (ss *session) connect(cmd *rtmp.Command) error {
	if ss.app != "" {
		return errors.New("second connect command")
	}
	app, _ := cmd.Object.GetString("app")
	ss.tcURL, _ = cmd.Object.GetString("tcUrl")
	ss.pageURL, _ = cmd.Object.GetString("pageUrl")
	app, _, _ = strings.Cut(strings.TrimSuffix(app, "/"), "?")
	if err := media.ValidateName(app); err != nil {
		return fmt.Errorf("connect: bad app %q: %w", app, err)
	}
	ss.app = app
	if err := ss.send(rtmp.WindowAckSize(rtmp.DefaultWindowAck), rtmp.PeerBandwidth(rtmp.DefaultWindowAck), rtmp.SetChunkSize(rtmp.OutChunkSize)); err != nil {
		return err
	}
	ss.wmu.Lock()
	ss.SetOutChunkSize(rtmp.OutChunkSize)
	ss.wmu.Unlock()
	return ss.reply(cmd,
		amf0.Object{{Key: "fmsVer", Value: "FMS/3,5,3,888"}, {Key: "capabilities", Value: float64(127)}, {Key: "mode", Value: float64(1)}},
		append(rtmp.Status("status", "NetConnection.Connect.Success", "Connection succeeded."), amf0.Entry{Key: "objectEncoding", Value: float64(0)}))
}

// streamName splits the publish/play argument into name and the query kept for auth.
func (ss *session) streamName(cmd *rtmp.Command) error {
	if ss.app == "" {
		return fmt.Errorf("%s before connect", cmd.Name)
	}
	if ss.name != "" {
		return fmt.Errorf("%s on a session already bound to %q", cmd.Name, ss.name)
	}
	raw, ok := cmd.Arg(0)
	if !ok {
		return fmt.Errorf("%s without a stream name", cmd.Name)
	}
	name, query, _ := strings.Cut(raw, "?")
	if err := media.ValidateName(name); err != nil {
		return fmt.Errorf("%s: bad stream name: %w", cmd.Name, err)
	}
	ss.name, ss.query = name, query
	return nil
}

func (ss *session) publish(ctx context.Context, cmd *rtmp.Command) error {
	if err := ss.streamName(cmd); err != nil {
		return err
	}
	err := ss.admit(ctx, ss.srv.Admit.Publish)
	var pub *media.Publisher
	var unpublish func()
	if err == nil {
		pub, unpublish, err = ss.srv.Router.Publish(ctx, ss.app, ss.name, ss.query, ss.remote)
	}
	if err != nil {
		msg, merr := rtmp.OnStatus("error", publishStatus(err), err.Error())
		if merr == nil {
			ss.send(msg)
		}
		return fmt.Errorf("publish refused: %w", err)
	}
	ss.pub, ss.unpublish = pub, unpublish
	ss.ChunkReader().SetLimits(mediaLimits)
	// Fencing: a node that loses the stream closes the publisher's connection.
	pub.OnKick(func(error) { ss.conn.Close() })
	ss.log().Info("publish start")
	if err := ss.send(rtmp.UserControl(rtmp.UserStreamBegin, rtmp.MediaStreamID)); err != nil {
		return err
	}
	msg, err := rtmp.OnStatus("status", "NetStream.Publish.Start", "Start publishing.")
	if err != nil {
		return err
	}
	return ss.send(msg)
}

func (ss *session) play(ctx context.Context, cmd *rtmp.Command) error {
	if err := ss.streamName(cmd); err != nil {
		return err
	}
	internal, err := ss.srv.Router.Play(ss.app, ss.name, ss.query)
	if err == nil && !internal {
		err = ss.admit(ctx, ss.srv.Admit.Play)
	}
	if err != nil {
		return ss.playFailed(err)
	}
	kind := "rtmp-play"
	if internal {
		kind = "link-pull"
	}
	player, err := ss.srv.Hub.Play(ss.app, ss.name, media.PlayOptions{Kind: kind, Remote: ss.remote, First: internal})
	if err != nil {
		return ss.playFailed(err)
	}
	msgs := []*chunk.Message{rtmp.UserControl(rtmp.UserStreamBegin, rtmp.MediaStreamID)}
	for _, st := range [][2]string{{"NetStream.Play.Reset", "Playing and resetting."}, {"NetStream.Play.Start", "Started playing."}} {
		m, err := rtmp.OnStatus("status", st[0], st[1])
		if err != nil {
			player.Close()
			return err
		}
		msgs = append(msgs, m)
	}
	access, _ := rtmp.EncodeCommand(rtmp.CSIDStatus, rtmp.MediaStreamID, "|RtmpSampleAccess", true, true)
	access.Type = rtmp.TypeDataAMF0
	msgs = append(msgs, access)
	if err := ss.send(msgs...); err != nil {
		player.Close()
		return err
	}
	ss.log().Info("play start")
	ss.ChunkReader().SetReadBuffer(playerReadBuffer)
	ss.stopPlay = func() { player.End(context.Canceled) }
	ss.playDone = make(chan error, 1)
	ss.srv.wg.Add(1)
	player.Serve(ss, ss.writeTags, func(err error) {
		defer ss.srv.wg.Done()
		ss.playDone <- err
		ss.conn.Close() // wakes the reader
	})
	return nil
}

// playerReadBuffer is the read buffer of a player's connection: it sends acks, pings and
// perhaps a pause or closeStream.
const playerReadBuffer = 128

// writeTags is the player's blocking write, for what the fan-out (TryWrite) could not
// write: a rest left pending, the start burst, a write while a reply went out.
func (ss *session) writeTags(tags []*flv.Tag) (int, error) {
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	n, err := ss.WriteTags(tags)
	return int(n), err
}

// TryWrite is the session's media.Sink: the fan-out's nonblocking write.
func (ss *session) TryWrite(tags []*flv.Tag) (int, media.SinkResult, error) {
	if !ss.wmu.TryLock() {
		return 0, media.SinkBusy, nil // a reply or ping answer is going out
	}
	defer ss.wmu.Unlock()
	return ss.TryWriteTags(tags)
}

// admit runs admission for a client's publish or play (check), once per session: the
// on_connect hook first (it waits for the publish or play that shows the session is a
// client, not a cluster link, which admission never sees), then the check. Cluster
// links pass through; the Router verifies their signatures.
func (ss *session) admit(ctx context.Context, check func(context.Context, admit.Client) error) error {
	if ss.srv.Router.IsLink(ss.query) {
		return nil
	}
	c := ss.client()
	if err := ss.srv.Admit.Connect(ctx, c); err != nil {
		return err
	}
	if err := check(ctx, c); err != nil {
		return err
	}
	ss.admitted = true
	return nil
}

// client describes the session to admission, as SRS's hooks describe a client.
func (ss *session) client() admit.Client {
	c := admit.Client{ID: ss.cid, IP: ss.remote, App: ss.app, Stream: ss.name, TcURL: ss.tcURL, PageURL: ss.pageURL}
	if host, _, err := net.SplitHostPort(ss.remote); err == nil {
		c.IP = host
	}
	if ss.query != "" {
		c.Param = "?" + ss.query
	}
	return c
}

// playFailed tells the player why its play was refused, then ends the session.
func (ss *session) playFailed(err error) error {
	if msg, merr := rtmp.OnStatus("error", "NetStream.Play.Failed", err.Error()); merr == nil {
		ss.send(msg)
	}
	return fmt.Errorf("play refused: %w", err)
}

// publishStatus is the onStatus code of a refused publish. Where FMS, nginx-rtmp or
// SRS have a code, it is theirs:
//   - another publisher holds the stream: NetStream.Publish.BadName, FMS's code for a
//     stream "already being published" (nginx-rtmp: "Already publishing");
//   - not authorized (a link's signature, a token, a hook): NetStream.Publish.Denied
//     (Wowza's and Red5's; nginx-rtmp drops the connection without a status);
//   - not placed, no placement leader, or over a node cap (--max-node-streams,
//     --max-publishes-per-ip): NetStream.Publish.Unavailable (peer's own);
//   - a timeout (placement, the relay to the master): NetStream.Publish.Timeout (peer's);
//   - anything else: NetStream.Failed, FMS's generic stream failure.
//
// A status a master answered a relayed publish with is handed on as it came.
func publishStatus(err error) string {
	var st *rtmp.StatusError
	var ne net.Error
	switch {
	case errors.As(err, &st) && st.Code != "":
		return st.Code
	case errors.Is(err, media.ErrBusy):
		return "NetStream.Publish.BadName"
	case errors.Is(err, dataplane.ErrNotAuthorized), admit.IsDenied(err):
		return "NetStream.Publish.Denied"
	case errors.Is(err, dataplane.ErrUnavailable), errors.Is(err, media.ErrTooManyStreams), errors.Is(err, media.ErrTooManyPublishes):
		return "NetStream.Publish.Unavailable"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "NetStream.Publish.Timeout"
	}
	return "NetStream.Failed"
}

// replyIfAsked answers a call that carries a transaction id with _result, null and v.
func (ss *session) replyIfAsked(cmd *rtmp.Command, v any) error {
	if cmd.TxID == 0 {
		return nil
	}
	return ss.reply(cmd, nil, v)
}

func (ss *session) reply(cmd *rtmp.Command, values ...any) error {
	msg, err := rtmp.EncodeCommand(rtmp.CSIDCommand, 0, append([]any{"_result", cmd.TxID}, values...)...)
	if err != nil {
		return err
	}
	return ss.send(msg)
}

// send writes messages and flushes them to the client.
func (ss *session) send(msgs ...*chunk.Message) error {
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	return ss.Write(msgs...)
}

// finish logs the session's end and releases what it held.
func (ss *session) finish(err error) {
	if ss.stopPlay != nil {
		ss.stopPlay()
		if ss.playDone != nil {
			if perr := <-ss.playDone; err == nil || errors.Is(err, net.ErrClosed) {
				err = perr
			}
		}
	}
	if ss.unpublish != nil {
		ss.unpublish()
	}
	if ss.admitted {
		if ss.pub != nil {
			ss.srv.Admit.Unpublish(ss.client())
		} else {
			ss.srv.Admit.Stop(ss.client())
		}
	}
	fields := []zap.Field{zap.Duration("duration", time.Since(ss.start))}
	if r := ss.ChunkReader(); r != nil {
		ss.wmu.Lock() // the fan-out may still be finishing a write to this player
		out := ss.BytesOut()
		ss.wmu.Unlock()
		fields = append(fields, zap.Uint64("bytes_in", r.Count()), zap.Uint64("bytes_out", out))
	}
	kind := "connection"
	switch {
	case ss.pub != nil:
		kind = "publish"
	case ss.stopPlay != nil:
		kind = "play"
	}
	fields = append(fields, zap.String("kind", kind))
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, context.Canceled) && !errors.Is(err, net.ErrClosed) {
		fields = append(fields, zap.Error(err))
		// A client can repeat these at will: rate-limited, by reason.
		reason := refusalReason(err)
		if kind == "connection" || reason != "refused" {
			fields = append(fields, zap.String("peer", ss.remote), zap.String("reason", reason))
			ss.srv.refusals.Warn("rtmp "+reason, "RTMP session refused: "+reason, fields...)
			if kind == "connection" {
				return
			}
		}
	} else {
		fields = append(fields, zap.String("reason", closeReason(err)))
	}
	ss.log().Info(kind+" stop", fields...)
}

// closeReason names how a session without an error ended, for its access line.
func closeReason(err error) string {
	switch {
	case errors.Is(err, context.Canceled):
		return "node stopping"
	case errors.Is(err, net.ErrClosed):
		return "closed by the node" // a kick, a fence, or its player ended
	}
	return "closed by the client"
}

// refusalReason names the class of a session's error for the refusal log.
func refusalReason(err error) string {
	switch {
	case errors.Is(err, chunk.ErrMessageTooLarge):
		return "message too large"
	case errors.Is(err, chunk.ErrBufferBudget), errors.Is(err, chunk.ErrChunkStreams), errors.Is(err, chunk.ErrProtocol):
		return "chunk stream violation"
	case errors.Is(err, rtmp.ErrMalformed):
		return "malformed command"
	case errors.Is(err, errHandshake):
		return "bad handshake"
	}
	return "refused"
}
