// Package admit decides whether a client that reached this node may connect, publish or
// play: signed tokens (?token=, no backend needed) and SRS-compatible HTTP hooks
// (on_connect, on_publish, on_unpublish, on_play, on_stop, on_hls) with SRS's JSON bodies,
// so an existing SRS hook backend works unchanged. The protocol servers call it once per
// client at the node the client reached, never for node-to-node links.
//
// It imports nothing from peer but the rate-limited logger.
package admit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"peer/conf/ratelog"
)

// Hooks lists the URLs called for each event, in order; SRS allows several per event.
type Hooks struct {
	OnConnect   []string
	OnPublish   []string
	OnUnpublish []string
	OnPlay      []string
	OnStop      []string
	OnHLS       []string
}

// Config is what admission needs.
type Config struct {
	Hooks       Hooks
	HookTimeout time.Duration // per call; default 5 s
	PublishKey  []byte        // tokens required to publish when set
	PlayKey     []byte        // tokens required to play when set
	ServerID    string        // SRS's server_id: the node's name
	// Apps replaces the hooks, hook timeout and keys above for the clients of an app, by
	// app name (the config file's per-app settings, already merged with the node's).
	Apps map[string]Config
}

// Client describes one client session for tokens and hooks.
type Client struct {
	ID      string // unique per session on this node
	IP      string
	App     string
	Stream  string // name within App; empty for on_connect
	Param   string // the query the client sent, with its '?', e.g. "?token=..."
	TcURL   string
	PageURL string
}

// Denied is a refusal: by a token check or by a hook. Servers turn it into an RTMP error
// status or an HTTP 403.
type Denied struct {
	Action string // on_publish, on_play, ...
	Reason string
}

func (d *Denied) Error() string { return d.Action + " denied: " + d.Reason }

// IsDenied reports whether err is a refusal by admission.
func IsDenied(err error) bool {
	var d *Denied
	return errors.As(err, &d)
}

// Admission is safe for concurrent use. A nil *Admission admits everything.
type Admission struct {
	*policy                    // the node's
	apps    map[string]*policy // per app, for the apps that have their own
	log     *zap.Logger
	rl      *ratelog.Limiter
	now     func() time.Time

	notify sync.WaitGroup // on_unpublish / on_stop / on_hls calls in flight
	slots  chan struct{}  // bounds them: a slow backend never piles up goroutines
}

// maxNotifyInFlight bounds fire-and-forget hook calls in flight; past it they are dropped
// with a rate-limited log line.
const maxNotifyInFlight = 256

// policy is the hooks and keys one app's clients (or the node's) are checked with.
type policy struct {
	cfg    Config
	client *http.Client
}

func newPolicy(cfg Config) *policy {
	if cfg.HookTimeout <= 0 {
		cfg.HookTimeout = 5 * time.Second
	}
	return &policy{cfg: cfg,
		client: &http.Client{Timeout: cfg.HookTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// checks reports whether cfg has any hook or key.
func (cfg Config) checks() bool {
	h := cfg.Hooks
	return len(h.OnConnect)+len(h.OnPublish)+len(h.OnUnpublish)+len(h.OnPlay)+len(h.OnStop)+len(h.OnHLS) > 0 ||
		len(cfg.PublishKey) > 0 || len(cfg.PlayKey) > 0
}

// New builds an Admission; it returns nil when nothing is configured, for the node or
// any app.
func New(cfg Config, log *zap.Logger) *Admission {
	checked := cfg.checks()
	for _, app := range cfg.Apps {
		checked = checked || app.checks()
	}
	if !checked {
		return nil
	}
	a := &Admission{
		policy: newPolicy(cfg),
		apps:   make(map[string]*policy, len(cfg.Apps)),
		log:    log,
		rl:     ratelog.New(log, 0),
		now:    time.Now,
		slots:  make(chan struct{}, maxNotifyInFlight),
	}
	for name, app := range cfg.Apps {
		app.ServerID, app.Apps = cfg.ServerID, nil
		a.apps[name] = newPolicy(app)
	}
	return a
}

// of is the policy for the clients of app.
func (a *Admission) of(app string) *policy {
	if p, ok := a.apps[app]; ok {
		return p
	}
	return a.policy
}

// Connect runs on_connect for an RTMP client's connect command.
func (a *Admission) Connect(ctx context.Context, c Client) error {
	if a == nil {
		return nil
	}
	p := a.of(c.App)
	return a.call(ctx, p, p.cfg.Hooks.OnConnect, a.body("on_connect", c, false))
}

// Publish checks a publisher's token, then runs on_publish.
func (a *Admission) Publish(ctx context.Context, c Client) error {
	if a == nil {
		return nil
	}
	p := a.of(c.App)
	if err := a.token(KindPublish, p.cfg.PublishKey, c); err != nil {
		return &Denied{"on_publish", err.Error()}
	}
	return a.call(ctx, p, p.cfg.Hooks.OnPublish, a.body("on_publish", c, true))
}

// Play checks a player's token, then runs on_play.
func (a *Admission) Play(ctx context.Context, c Client) error {
	if a == nil {
		return nil
	}
	p := a.of(c.App)
	if err := a.token(KindPlay, p.cfg.PlayKey, c); err != nil {
		return &Denied{"on_play", err.Error()}
	}
	return a.call(ctx, p, p.cfg.Hooks.OnPlay, a.body("on_play", c, true))
}

// PlayToken checks a player's token alone: HLS requests after a session's first (which
// went through Play) and its segments, which carry the playlist's token.
func (a *Admission) PlayToken(c Client) error {
	if a == nil {
		return nil
	}
	if err := a.token(KindPlay, a.of(c.App).cfg.PlayKey, c); err != nil {
		return &Denied{"on_play", err.Error()}
	}
	return nil
}

// PlayTokens reports whether players of app must carry a token.
func (a *Admission) PlayTokens(app string) bool { return a != nil && len(a.of(app).cfg.PlayKey) > 0 }

// Unpublish reports the end of a publish (on_unpublish) without waiting for it.
func (a *Admission) Unpublish(c Client) {
	if a != nil {
		p := a.of(c.App)
		a.notifyAsync(p, p.cfg.Hooks.OnUnpublish, a.body("on_unpublish", c, true))
	}
}

// Stop reports the end of a play (on_stop) without waiting for it.
func (a *Admission) Stop(c Client) {
	if a != nil {
		p := a.of(c.App)
		a.notifyAsync(p, p.cfg.Hooks.OnStop, a.body("on_stop", c, true))
	}
}

// Segment describes a finished HLS segment for on_hls.
type Segment struct {
	Duration float64 // seconds
	File     string  // the segment's name, e.g. "live/test-12.ts"
	URL      string  // its URL path
	M3U8     string  // the playlist's URL path
	SeqNo    uint64
}

// HLS reports a finished HLS segment (on_hls) without waiting for it.
func (a *Admission) HLS(c Client, s Segment) {
	if a == nil {
		return
	}
	p := a.of(c.App)
	if len(p.cfg.Hooks.OnHLS) == 0 {
		return
	}
	b := a.body("on_hls", c, true)
	b["duration"], b["file"], b["url"], b["m3u8"], b["m3u8_url"], b["seq_no"] = s.Duration, s.File, s.URL, s.M3U8, s.M3U8, s.SeqNo
	a.notifyAsync(p, p.cfg.Hooks.OnHLS, b)
}

// Close waits for the notifications in flight (each bounded by the hook timeout).
func (a *Admission) Close() {
	if a != nil {
		a.notify.Wait()
	}
}

func (a *Admission) token(kind string, key []byte, c Client) error {
	if len(key) == 0 {
		return nil
	}
	q, _ := url.ParseQuery(strings.TrimPrefix(c.Param, "?"))
	return VerifyToken(key, kind, c.App+"/"+c.Stream, q.Get("token"), a.now())
}

// body is SRS's hook body for action (SRS 5 field names).
func (a *Admission) body(action string, c Client, withStream bool) map[string]any {
	b := map[string]any{
		"server_id": a.cfg.ServerID, "service_id": a.cfg.ServerID,
		"action": action, "client_id": c.ID, "ip": c.IP, "vhost": "__defaultVhost__", "app": c.App,
		"tcUrl": c.TcURL, "pageUrl": c.PageURL,
	}
	if withStream {
		b["stream"], b["param"] = c.Stream, c.Param
		b["stream_url"] = "/" + c.App + "/" + c.Stream
		b["stream_id"] = c.App + "/" + c.Stream
	}
	return b
}

func (a *Admission) notifyAsync(p *policy, urls []string, body map[string]any) {
	if len(urls) == 0 {
		return
	}
	select {
	case a.slots <- struct{}{}:
	default:
		a.rl.Warn("hook-backlog", "hook notification dropped: too many in flight", zap.Any("action", body["action"]))
		return
	}
	a.notify.Add(1)
	go func() {
		defer func() { <-a.slots; a.notify.Done() }()
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.HookTimeout)
		defer cancel()
		if err := a.call(ctx, p, urls, body); err != nil {
			a.rl.Warn("hook-notify", "hook notification failed", zap.Error(err))
		}
	}()
}

// call posts body to every URL in order with p's client; each must allow (SRS: any
// refusal refuses).
func (a *Admission) call(ctx context.Context, p *policy, urls []string, body map[string]any) error {
	if len(urls) == 0 {
		return nil
	}
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	action, _ := body["action"].(string)
	for _, u := range urls {
		if err := p.post(ctx, u, data); err != nil {
			return &Denied{action, err.Error()}
		}
	}
	return nil
}

// maxHookReply bounds what is read of a hook's answer.
const maxHookReply = 64 << 10

// post calls one hook: allowed only on HTTP 200 with a body of 0 or {"code": 0}.
func (p *policy) post(ctx context.Context, u string, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.HookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("hook %s: %w", u, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("hook %s: %w", u, err)
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, maxHookReply))
	if err != nil {
		return fmt.Errorf("hook %s: reading the answer: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("hook %s answered %s", u, resp.Status)
	}
	if !allows(reply) {
		return fmt.Errorf("hook %s answered %q", u, truncate(reply, 100))
	}
	return nil
}

// allows reads a hook answer as SRS does: the integer 0, or a JSON object with code 0.
func allows(reply []byte) bool {
	reply = bytes.TrimSpace(reply)
	if string(reply) == "0" {
		return true
	}
	var v struct {
		Code *json.Number `json:"code"`
	}
	if json.Unmarshal(reply, &v) != nil || v.Code == nil {
		return false
	}
	return v.Code.String() == "0"
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
