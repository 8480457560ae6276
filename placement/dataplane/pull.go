package dataplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"peer/media"
	"peer/media/ingest"
	"peer/media/rtmp"
)

// PullConfig is where an app's streams that no node publishes come from (--pull), as
// nginx-rtmp's pull and SRS's ingest: a player asking for such a stream makes its node
// play it from the upstream and publish it into the cluster.
type PullConfig struct {
	// URL is an http(s):// HTTP-FLV or an rtmp:// URL in which {app} and {stream} stand
	// for the player's; "" pulls nothing.
	URL string
	// Idle ends the pull once the stream has had no players this long.
	Idle time.Duration
	// Silence is the longest the upstream may send nothing (and the dial timeout).
	Silence time.Duration
}

// upstreams are the running pulls of one Router, by stream.
type upstreams struct {
	mu      sync.Mutex
	ctx     context.Context // Run's; nil before Run: nothing is pulled
	running map[string]bool
	wg      sync.WaitGroup
}

// pullUpstream starts the pull of app/name when its app has one and no node publishes
// the stream (a user's publish, or this node's or another's pull, comes first).
func (r *Router) pullUpstream(app, name string) {
	if r.Pull == nil || r.Placed(app, name) {
		return
	}
	pc := r.Pull(app)
	if pc.URL == "" {
		return
	}
	stream := app + "/" + name
	u := r.upstreams
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.ctx == nil || u.ctx.Err() != nil || u.running[stream] {
		return
	}
	u.running[stream] = true
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		r.runPull(u.ctx, app, name, pc)
		u.mu.Lock()
		delete(u.running, stream)
		u.mu.Unlock()
	}()
}

// errPublishedElsewhere ends a pull whose stream another publisher holds.
var errPublishedElsewhere = errors.New("the stream has another publisher")

// runPull keeps the stream pulled, reconnecting with backoff, until it has had no
// players for pc.Idle, another publisher holds it, or ctx ends.
func (r *Router) runPull(ctx context.Context, app, name string, pc PullConfig) {
	src := expandPull(pc.URL, app, name)
	log := r.Log.With(zap.String("stream", app+"/"+name), zap.String("upstream", src))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // the idle watch
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				if r.watched(app, name, pc.Idle) {
					last = now
				} else if now.Sub(last) >= pc.Idle {
					log.Info("upstream pull idle: stopping")
					cancel()
					return
				}
			}
		}
	}()
	log.Info("upstream pull start")
	retry(ctx, log, func() error {
		err := r.pullOnce(ctx, app, name, src, pc.Silence)
		if errors.Is(err, errPublishedElsewhere) {
			cancel()
		}
		log.Info("upstream pull down", zap.Error(err))
		return err
	})
}

// watched reports whether app/name has viewers: here (HLS requests in the last idle
// included), or at the edges placement lists for it (their pulls from this node are
// links, not viewers).
func (r *Router) watched(app, name string, idle time.Duration) bool {
	if s := r.Hub.Lookup(app, name); s != nil && s.Viewers(idle) > 0 {
		return true
	}
	a, ok := r.Cluster.Lookup(app + "/" + name)
	return ok && len(a.Edges) > 0
}

// pullOnce plays the upstream and publishes what it sends through the path a user's
// publish takes (placement, a relay to the stream's master), until either side ends.
func (r *Router) pullOnce(ctx context.Context, app, name, src string, silence time.Duration) error {
	in, closeIn, err := dialUpstream(ctx, src, silence)
	if err != nil {
		return err
	}
	defer closeIn()
	stop := context.AfterFunc(ctx, closeIn)
	defer stop()
	pub, finish, err := r.Publish(ctx, app, name, "", "pull:"+src)
	if errors.Is(err, media.ErrBusy) || refusedBusy(err) {
		return fmt.Errorf("%w: %w", errPublishedElsewhere, err)
	}
	if err != nil {
		return err
	}
	defer finish()
	pub.OnKick(func(error) { closeIn() }) // fencing, as for a user's connection
	return ingest.Pump(in, pub)
}

// expandPull puts app and name into a pull URL template.
func expandPull(tmpl, app, name string) string {
	return strings.NewReplacer("{app}", app, "{stream}", name).Replace(tmpl)
}

// dialUpstream opens src through its protocol's ingest adapter: HTTP-FLV over http(s),
// or an RTMP play. close ends it (and unblocks a read); a read after silence without
// data fails.
func dialUpstream(ctx context.Context, src string, silence time.Duration) (ingest.Reader, func(), error) {
	u, err := url.Parse(src)
	if err != nil {
		return nil, nil, err
	}
	switch u.Scheme {
	case "rtmp":
		app, stream, ok := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		if !ok || app == "" || stream == "" {
			return nil, nil, fmt.Errorf("pull %s: want rtmp://host/app/stream", src)
		}
		if u.RawQuery != "" {
			stream += "?" + u.RawQuery
		}
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "1935")
		}
		c, err := rtmp.DialPlay(ctx, host, app, stream, silence)
		if err != nil {
			return nil, nil, err
		}
		return c, func() { c.Close() }, nil
	case "http", "https":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
		if err != nil {
			return nil, nil, err
		}
		client := http.Client{Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, DialContext: (&net.Dialer{Timeout: silence}).DialContext,
			TLSHandshakeTimeout: silence, ResponseHeaderTimeout: silence,
		}}
		resp, err := client.Do(req)
		if err != nil {
			return nil, nil, err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, nil, fmt.Errorf("pull %s: HTTP %s", src, resp.Status)
		}
		body := &silenceReader{r: resp.Body, timer: time.AfterFunc(silence, func() { resp.Body.Close() }), silence: silence}
		var once sync.Once
		return ingest.NewFLV(body), func() {
			once.Do(func() { body.timer.Stop(); resp.Body.Close(); client.CloseIdleConnections() })
		}, nil
	}
	return nil, nil, fmt.Errorf("pull %s: want an http://, https:// or rtmp:// URL", src)
}

// silenceReader closes an HTTP body (its timer's work) when no read returns data for
// silence: an upstream that stops sending fails the pull instead of holding it.
type silenceReader struct {
	r       io.Reader
	timer   *time.Timer
	silence time.Duration
}

func (s *silenceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.timer.Reset(s.silence)
	}
	return n, err
}
