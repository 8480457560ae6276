package dataplane

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"peer/media"
	"peer/media/flv"
	"peer/media/rtmp"
	"peer/placement"
)

// relay accepts a user's publish at this ingress for a stream mastered elsewhere. The
// publisher writes into a private copy (RelayHub); a relay link plays that copy and
// publishes it to the master at the RTMP message level. When the master dies the link
// re-points to the promoted one while the publisher keeps sending, unaware.
func (r *Router) relay(ctx context.Context, app, name, remote string, a placement.Assignment) (*media.Publisher, func(), error) {
	stream := app + "/" + name
	pub, err := r.RelayHub.Publish(app, name, remote, media.Origin)
	if err != nil {
		return nil, nil, err
	}
	player, err := r.RelayHub.Play(app, name, media.PlayOptions{Kind: "link-relay", Remote: "node:" + a.Master, Link: true})
	if err != nil {
		pub.Close()
		return nil, nil, err
	}
	sink, err := r.openRelaySink(ctx, app, name, a, false)
	if err != nil {
		player.Close()
		pub.Close()
		return nil, nil, err
	}
	r.Log.Info("publish relayed to master", zap.String("stream", stream), zap.String("master", a.Master))
	lctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var superseded bool // written by runRelay before done closes
	endLink := r.gauges.relay.run()
	go func() {
		defer close(done)
		defer endLink()
		superseded = r.runRelay(lctx, app, name, player, sink)
	}()
	finish := func() {
		cancel()
		<-done
		pub.Close()
		// The publisher left: the stream ends wherever its master now is, unless another
		// publisher holds it now.
		if cur, ok := r.Cluster.Lookup(stream); ok && !superseded {
			r.release(stream, cur.Epoch)
		}
	}
	return pub, finish, nil
}

// relaySink is where a relay link delivers: the master's RTMP port, or this node's own
// hub when placement made this node the master after all (all origins died).
type relaySink interface {
	write(tags []*flv.Tag) (int64, error)
	close()
	node() string // the master it delivers to
	// inline is the media.Sink the stream's fan-out may write through from the
	// publisher's goroutine, or nil when every write must come from the link's.
	inline() media.Sink
}

type remoteSink struct {
	c      *rtmp.Client
	master string
}

func (s remoteSink) write(tags []*flv.Tag) (int64, error) { return s.c.WriteTags(tags) }
func (s remoteSink) close()                               { s.c.Close() }
func (s remoteSink) node() string                         { return s.master }
func (s remoteSink) inline() media.Sink                   { return s.c }

// localSink delivers to this node's hub when the node is the master itself.
type localSink struct {
	pub    *media.Publisher
	finish func()
	self   string
	closed *atomic.Bool
}

func (s localSink) node() string { return s.self }

// inline: none, a local publish from inside another stream's fan-out would run that
// stream's fan-out on this one's goroutine.
func (s localSink) inline() media.Sink { return nil }

// errLocalSinkGone: the relay must re-point, like a remote master's failed write (local
// writes never fail by themselves, so without it a fenced or closed sink would swallow
// the stream).
var errLocalSinkGone = errors.New("this node is no longer the stream's master")

func (s localSink) write(tags []*flv.Tag) (int64, error) {
	if s.closed.Load() || s.pub.Kicked() {
		return 0, errLocalSinkGone
	}
	var n int64
	for _, t := range tags {
		s.pub.WriteAt(t.Type, t.Time, t.Data())
		n += int64(len(t.Raw))
	}
	return n, nil
}

func (s localSink) close() {
	if s.closed.CompareAndSwap(false, true) {
		s.finish()
	}
}

// openRelaySink connects to the stream's master, retrying connection failures (the
// master may have just died and not yet been replaced) for a few seconds. A master that
// refuses (a publisher is already there) ends it at once. cont marks a re-point: the
// new master continues the stream's timeline from what it has.
func (r *Router) openRelaySink(ctx context.Context, app, name string, a placement.Assignment, cont bool) (relaySink, error) {
	src := media.Origin
	if cont {
		src = media.Resume
	}
	stream := app + "/" + name
	ctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	backoff := 100 * time.Millisecond
	for {
		if a.Master == r.self() {
			pub, err := r.Hub.Publish(app, name, "relay:"+stream, src)
			if err != nil {
				return nil, err
			}
			epoch := a.Epoch
			return localSink{pub: pub, finish: func() { pub.Close(); r.release(stream, epoch) }, self: r.self(), closed: new(atomic.Bool)}, nil
		}
		err := errors.New("master not alive")
		if m, ok := r.links.member(a.Master); ok {
			var c *rtmp.Client
			c, err = rtmp.DialPublish(ctx, m.RTMP, app, name+r.auth.query(linkRelay, stream, r.self(), a.Master, a.Epoch, cont), r.DialTimeout)
			if err == nil {
				return remoteSink{c: c, master: a.Master}, nil
			}
			if refusedBusy(err) {
				return nil, fmt.Errorf("master %s: %w", a.Master, err)
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("relay to master %s: %w", a.Master, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
		if a, err = r.Cluster.Acquire(ctx, stream, r.self()); err != nil {
			return nil, err
		}
	}
}

// refusedBusy tells a master's "stream is already being published" from refusals that
// a retry may cure (its placement view lagging behind ours).
func refusedBusy(err error) bool {
	return errors.Is(err, rtmp.ErrRefused) && strings.Contains(err.Error(), media.ErrBusy.Error())
}

// errSuperseded ends a relayed publish whose stream another publisher took meanwhile
// (this ingress was frozen or cut off and the user published again elsewhere).
var errSuperseded = errors.New("another publisher holds the stream at its master")

// runRelay delivers the private copy to the master, re-pointing on failure. It reports
// superseded when it ended because another publisher holds the stream: it then closed
// its own publisher's connection, which must not end the stream.
func (r *Router) runRelay(ctx context.Context, app, name string, player *media.Player, sink relaySink) (superseded bool) {
	stream := app + "/" + name
	for {
		stopWatch := r.watchMaster(ctx, stream, sink)
		down := r.gauges.relay.connected()
		err := pump(ctx, player, sink)
		down()
		stopWatch()
		sink.close()
		player.Close()
		if ctx.Err() != nil {
			return false
		}
		r.Log.Warn("relay to master lost; re-pointing", zap.String("stream", stream), zap.Error(err))
		for ctx.Err() == nil {
			var a placement.Assignment
			if a, err = r.Cluster.Acquire(ctx, stream, r.self()); err == nil {
				// The GOP goes again: the new master keeps what follows its last tag, so no
				// frame the old master failed to forward is lost and none is doubled.
				player, err = r.RelayHub.Play(app, name, media.PlayOptions{Kind: "link-relay", Remote: "node:" + a.Master, Link: true})
				if err == nil {
					if sink, err = r.openRelaySink(ctx, app, name, a, true); err == nil {
						r.Log.Info("relay re-pointed", zap.String("stream", stream), zap.String("master", a.Master))
						break
					}
					player.Close()
				}
			}
			if ctx.Err() != nil {
				return false
			}
			if refusedBusy(err) {
				r.Log.Warn("relayed publisher closed: the stream has another publisher", zap.String("stream", stream), zap.Error(err))
				r.RelayHub.Kick(app, name, nil, errSuperseded)
				return true
			}
			r.Log.Info("relay re-point failed; retrying", zap.String("stream", stream), zap.Error(err))
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// pump copies a local stream to a sink until either side fails. A sink that can take
// nonblocking writes is written by the stream's fan-out while it keeps up (a link to
// another node is then written first, with no goroutine woken per frame); this
// goroutine writes what the fan-out hands over (Next returns no tags when all it has
// to do is finish a partial write, which write does first).
func pump(ctx context.Context, p *media.Player, s relaySink) error {
	if in := s.inline(); in != nil {
		p.SetSink(in)
	}
	var batch []*flv.Tag
	for {
		var err error
		batch, err = p.Next(ctx, batch[:0])
		if err != nil {
			return err
		}
		n, err := s.write(batch)
		clear(batch)
		p.Sent(int(n))
		if err != nil {
			return err
		}
	}
}

// watchMaster closes the sink as soon as placement names another master: a frozen or
// cut-off master never fails our writes quickly, so waiting for an error would stall
// the stream for the whole fault.
func (r *Router) watchMaster(ctx context.Context, stream string, sink relaySink) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				sink.close() // also unblocks a write stuck on a frozen master
				return
			case <-t.C:
			}
			if a, ok := r.Cluster.Lookup(stream); ok && a.Master != sink.node() {
				r.Log.Info("relay: the stream's master moved; re-pointing", zap.String("stream", stream),
					zap.String("from", sink.node()), zap.String("to", a.Master))
				sink.close()
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}
