package conf

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestAppsRoundTrip: an apps section reaches Node.Apps, and ForApp applies an app's
// settings over the node-wide ones (flags included) while other apps keep those.
func TestAppsRoundTrip(t *testing.T) {
	p := writeFile(t, `hls-fragment: 2s
on-publish: [http://127.0.0.1:1/node]
apps:
  live:
    hls-fragment: 4s   # per app
    hls-window: 10
    gop-cache-time: 10s
    player-queue: 512
    merge-write: 100ms
    on-publish: [http://127.0.0.1:1/a, http://127.0.0.1:1/b]
    token-publish-key: k1
    hook-timeout: 1s
  open:
    on-publish: []
`)
	n, err := parseWith(t, p, "--player-queue", "2048")
	if err != nil {
		t.Fatal(err)
	}
	live := n.ForApp("live")
	if live.HLSFragment != 4*time.Second || live.HLSWindow != 10 || live.GOPCacheTime != 10*time.Second ||
		live.PlayerQueue != 512 || live.MergeWrite != 100*time.Millisecond || live.TokenPublishKey != "k1" ||
		live.HookTimeout != time.Second || !reflect.DeepEqual(live.OnPublish, []string{"http://127.0.0.1:1/a", "http://127.0.0.1:1/b"}) {
		t.Fatalf("live: %+v", live)
	}
	if live.TokenPlayKey != "" || live.Replicas != n.Replicas {
		t.Fatalf("live changed what it does not set: %+v", live)
	}
	open := n.ForApp("open")
	if open.OnPublish == nil || len(open.OnPublish) != 0 || open.HLSFragment != 2*time.Second || open.PlayerQueue != 2048 {
		t.Fatalf("open: %+v", open)
	}
	other := n.ForApp("other")
	if other.PlayerQueue != 2048 || !reflect.DeepEqual(other.OnPublish, []string{"http://127.0.0.1:1/node"}) {
		t.Fatalf("other: %+v", other)
	}
}

// TestAppsErrors: every problem in an apps section is reported at its line.
func TestAppsErrors(t *testing.T) {
	_, err := LoadFile(writeFile(t, `apps:
  live:
    hls-fragment: soon
    max-connections: 5
    hls-windw: 3
    on-play: {a: b}
  "a/b":
    hls-window: 3
  open: 3
`))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		":3: apps: live: hls-fragment:",
		`:4: apps: live: unknown per-app setting "max-connections"`,
		`:5: apps: live: unknown per-app setting "hls-windw" (did you mean hls-window?)`,
		":6: apps: live: on-play: want a single value",
		`:7: apps: bad app name "a/b"`,
		":9: apps: open: want a mapping",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if _, err := LoadFile(writeFile(t, "apps: [live]\n")); err == nil || !strings.Contains(err.Error(), ":1: apps: want a mapping") {
		t.Errorf("apps as a list: %v", err)
	}
	if f, err := LoadFile(writeFile(t, "apps:\n# none yet\n")); err != nil || len(f.Apps()) != 0 {
		t.Errorf("an empty apps section: %v", err)
	}
	if _, err := LoadFile(writeFile(t, "appz: {}\n")); err == nil || !strings.Contains(err.Error(), `:1: unknown setting "appz"`) {
		t.Errorf("typo of apps: %v", err)
	}
}

// TestAppSettingsMatchNode: each per-app field overrides the Node field of its name,
// of the type its flag has.
func TestAppSettingsMatchNode(t *testing.T) {
	flags := runFlags()
	nt := reflect.TypeOf(Node{})
	at := reflect.TypeOf(AppSettings{})
	for i := 0; i < at.NumField(); i++ {
		f := at.Field(i)
		fl := flags[f.Tag.Get("flag")]
		nf, ok := nt.FieldByName(f.Name)
		if fl == nil || !ok {
			t.Fatalf("%s: no flag %q or Node field", f.Name, f.Tag.Get("flag"))
		}
		want := f.Type
		if want.Kind() == reflect.Pointer {
			want = want.Elem()
		}
		if nf.Type != want || fl.Target.Type() != want {
			t.Errorf("%s: %v, Node has %v, flag %v", f.Name, want, nf.Type, fl.Target.Type())
		}
	}
}
