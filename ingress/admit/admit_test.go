package admit

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
)

func TestTokens(t *testing.T) {
	key := []byte("publish-key")
	now := time.Unix(1_800_000_000, 0)
	tok := MintToken(key, KindPublish, "live/test", now.Add(time.Hour))
	if err := VerifyToken(key, KindPublish, "live/test", tok, now); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	app := MintToken(key, KindPublish, "live/*", now.Add(time.Hour))
	if err := VerifyToken(key, KindPublish, "live/other", app, now); err != nil {
		t.Fatalf("app token: %v", err)
	}
	cases := []struct {
		name, kind, stream, token string
		key                       []byte
		at                        time.Time
		want                      error
	}{
		{"expired", KindPublish, "live/test", tok, key, now.Add(2 * time.Hour), ErrTokenExpired},
		{"other stream", KindPublish, "live/other", tok, key, now, ErrTokenScope},
		{"other app", KindPublish, "vod/test", app, key, now, ErrTokenScope},
		{"play with a publish token", KindPlay, "live/test", tok, key, now, ErrTokenBadSig},
		{"other key", KindPublish, "live/test", tok, []byte("k2"), now, ErrTokenBadSig},
		{"tampered expiry", KindPublish, "live/test", strings.Replace(tok, ".18", ".19", 1), key, now, ErrTokenBadSig},
		{"missing", KindPublish, "live/test", "", key, now, ErrTokenMissing},
		{"garbage", KindPublish, "live/test", "a.b", key, now, ErrTokenMalformed},
	}
	for _, c := range cases {
		if err := VerifyToken(c.key, c.kind, c.stream, c.token, c.at); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func FuzzVerifyToken(f *testing.F) {
	key := []byte("k")
	f.Add(MintToken(key, KindPlay, "live/test", time.Unix(2e9, 0)))
	f.Add("bGl2ZS8q.1.x")
	f.Add("...")
	f.Fuzz(func(t *testing.T, tok string) {
		_ = VerifyToken(key, KindPlay, "live/test", tok, time.Unix(1e9, 0))
	})
}

// hookServer records SRS hook calls and answers each with reply(action).
type hookServer struct {
	*httptest.Server
	mu    sync.Mutex
	calls []map[string]any
}

func newHookServer(t *testing.T, reply func(action string) (int, string)) *hookServer {
	h := &hookServer{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body map[string]any
		if err := json.Unmarshal(b, &body); err != nil {
			t.Errorf("hook body is not JSON: %q", b)
		}
		h.mu.Lock()
		h.calls = append(h.calls, body)
		h.mu.Unlock()
		code, text := reply(body["action"].(string))
		w.WriteHeader(code)
		io.WriteString(w, text)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) actions() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var a []string
	for _, c := range h.calls {
		a = append(a, c["action"].(string))
	}
	return a
}

func TestHooksAllowAndDeny(t *testing.T) {
	answers := map[string]string{"on_connect": "0", "on_publish": `{"code": 0, "data": null}`, "on_play": `{"code": 403}`}
	h := newHookServer(t, func(action string) (int, string) { return 200, answers[action] })
	a := New(Config{ServerID: "n1", Hooks: Hooks{OnConnect: []string{h.URL}, OnPublish: []string{h.URL, h.URL},
		OnPlay: []string{h.URL}, OnStop: []string{h.URL}}}, zap.NewNop())
	c := Client{ID: "c1", IP: "127.0.0.1", App: "live", Stream: "test", Param: "?k=v", TcURL: "rtmp://127.0.0.1/live"}
	ctx := context.Background()
	if err := a.Connect(ctx, c); err != nil {
		t.Fatalf("on_connect answered 0: %v", err)
	}
	if err := a.Publish(ctx, c); err != nil {
		t.Fatalf(`on_publish answered {"code":0}: %v`, err)
	}
	if err := a.Play(ctx, c); !IsDenied(err) {
		t.Fatalf(`on_play answered {"code":403}: %v`, err)
	}
	a.Stop(c)
	a.Close()
	if got := strings.Join(h.actions(), ","); got != "on_connect,on_publish,on_publish,on_play,on_stop" {
		t.Fatalf("calls %s", got)
	}
	pub := h.calls[1]
	for k, v := range map[string]any{"client_id": "c1", "ip": "127.0.0.1", "vhost": "__defaultVhost__", "app": "live",
		"stream": "test", "param": "?k=v", "tcUrl": "rtmp://127.0.0.1/live", "server_id": "n1"} {
		if pub[k] != v {
			t.Errorf("on_publish %s = %v, want %v", k, pub[k], v)
		}
	}
}

func TestHookRefusals(t *testing.T) {
	for _, c := range []struct {
		name  string
		code  int
		reply string
	}{{"HTTP 500", 500, "0"}, {"body 1", 200, "1"}, {"empty body", 200, ""}, {"code missing", 200, `{"ok":true}`}} {
		h := newHookServer(t, func(string) (int, string) { return c.code, c.reply })
		a := New(Config{Hooks: Hooks{OnPublish: []string{h.URL}}}, zap.NewNop())
		if err := a.Publish(context.Background(), Client{App: "live", Stream: "s"}); !IsDenied(err) {
			t.Errorf("%s: publish allowed (%v)", c.name, err)
		}
	}
	// A hook that does not answer in time refuses.
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
	}))
	defer slow.Close()
	defer close(release)
	a := New(Config{HookTimeout: 200 * time.Millisecond, Hooks: Hooks{OnPublish: []string{slow.URL}}}, zap.NewNop())
	if err := a.Publish(context.Background(), Client{App: "live", Stream: "s"}); !IsDenied(err) {
		t.Fatalf("a hook past its timeout allowed the publish: %v", err)
	}
}

func TestTokensAtAdmission(t *testing.T) {
	a := New(Config{PublishKey: []byte("pk"), PlayKey: []byte("vk")}, zap.NewNop())
	exp := time.Now().Add(time.Minute)
	pub := Client{App: "live", Stream: "s", Param: "?token=" + MintToken([]byte("pk"), KindPublish, "live/s", exp)}
	if err := a.Publish(context.Background(), pub); err != nil {
		t.Fatal(err)
	}
	if err := a.Play(context.Background(), pub); !IsDenied(err) {
		t.Fatalf("a publish token let a player in: %v", err)
	}
	if err := a.Play(context.Background(), Client{App: "live", Stream: "s"}); !IsDenied(err) {
		t.Fatalf("a player without a token got in: %v", err)
	}
	if New(Config{}, zap.NewNop()) != nil {
		t.Fatal("an empty config should admit everything (nil)")
	}
}

// TestPerAppAdmission: an app's token key and hooks apply to that app's clients only;
// other apps keep the node's, and an app with checks alone still builds an Admission.
func TestPerAppAdmission(t *testing.T) {
	h := newHookServer(t, func(string) (int, string) { return 200, "0" })
	a := New(Config{Apps: map[string]Config{
		"live": {PublishKey: []byte("pk"), Hooks: Hooks{OnConnect: []string{h.URL}, OnPublish: []string{h.URL}}},
	}}, zap.NewNop())
	if a == nil {
		t.Fatal("per-app checks alone built no Admission")
	}
	ctx := context.Background()
	exp := time.Now().Add(time.Minute)
	if err := a.Publish(ctx, Client{App: "live", Stream: "s"}); !IsDenied(err) {
		t.Fatalf("live without a token: %v", err)
	}
	live := Client{App: "live", Stream: "s", Param: "?token=" + MintToken([]byte("pk"), KindPublish, "live/s", exp)}
	if err := a.Connect(ctx, Client{App: "live"}); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, live); err != nil {
		t.Fatalf("live with a token: %v", err)
	}
	if err := a.Publish(ctx, Client{App: "open", Stream: "s"}); err != nil {
		t.Fatalf("open without a token: %v", err)
	}
	if err := a.Connect(ctx, Client{App: "open"}); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if got := strings.Join(h.actions(), ","); got != "on_connect,on_publish" {
		t.Fatalf("hooks called %s, want live's on_connect and on_publish only", got)
	}
	if a.PlayTokens("live") || a.PlayTokens("open") {
		t.Fatal("no app has a play key")
	}
}
