package conf

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"
)

// parseWith runs the CLI's flag parsing over args with a config file, as cmd/peer does.
func parseWith(t *testing.T, path string, args ...string) (Node, error) {
	t.Helper()
	var holder struct {
		Config kong.ConfigFlag
		Node   `embed:""`
	}
	var loader Loader
	parser, err := kong.New(&holder, kong.Vars{"hostname": "h"}, kong.Configuration(loader.Load), kong.Exit(func(int) {}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = parser.Parse(append([]string{"--config", path}, args...))
	holder.Node.Apps = loader.Apps()
	return holder.Node, err
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "peer.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFileRoundTrip writes every setting of the defaults to a file and reads it back.
func TestFileRoundTrip(t *testing.T) {
	var b strings.Builder
	b.WriteString("# every setting, at its default\n")
	overridden := map[string]bool{"name": true, "replicas": true, "hls-fragment": true, "log-format": true}
	for name, fl := range runFlags() {
		if fl.Default == "" || overridden[name] {
			continue
		}
		b.WriteString(name + ": \"" + fl.Default + "\" # " + fl.Help[:min(20, len(fl.Help))] + "\n")
	}
	b.WriteString("name: from-file\nreplicas: 1\nhls-fragment: 3s\nlog-format: json\n")
	got, err := parseWith(t, writeFile(t, b.String()))
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.Name, want.Replicas, want.HLSFragment, want.LogFormat = "from-file", 1, 3*time.Second, "json"
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
}

// TestFileErrorsHaveLines lists every problem of a bad file as file:line.
func TestFileErrorsHaveLines(t *testing.T) {
	p := writeFile(t, strings.Join([]string{
		"# a bad file",
		"rtmp: 127.0.0.1:1935",
		"max-conections: 10",
		"hls-fragment: two seconds",
		"log-format: xml",
		"replicas: [1, 2]",
		"rtmp: 127.0.0.1:1936",
	}, "\n"))
	_, err := LoadFile(p)
	var errs FileErrors
	if !errors.As(err, &errs) {
		t.Fatalf("want FileErrors, got %v", err)
	}
	want := []string{
		p + `:3: unknown setting "max-conections" (did you mean max-connections?)`,
		p + `:4: hls-fragment: `,
		p + `:5: log-format: "xml" is not one of console,json`,
		p + `:6: replicas: want a single value`,
		p + `:7: rtmp is set twice`,
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("error %d: got %q, want prefix %q", i, errs[i].Error(), w)
		}
	}
	// A bad file fails the start the same way.
	if _, err := parseWith(t, p); err == nil || !strings.Contains(err.Error(), p+":3:") {
		t.Fatalf("start with a bad file: %v", err)
	}
	// YAML syntax errors carry their line too.
	if _, err := LoadFile(writeFile(t, "rtmp: a\nhttp: [\n")); err == nil || !strings.Contains(err.Error(), ":2:") && !strings.Contains(err.Error(), ":3:") {
		t.Fatalf("syntax error: %v", err)
	}
}

// TestFileLists: a list flag (hook URLs) takes a YAML sequence.
func TestFileLists(t *testing.T) {
	p := writeFile(t, "on-publish:\n  - http://127.0.0.1:8085/api/v1/streams\n  - http://127.0.0.1:8086/hook\non-play: http://127.0.0.1:8085/play\n")
	got, err := parseWith(t, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.OnPublish) != 2 || got.OnPublish[1] != "http://127.0.0.1:8086/hook" || len(got.OnPlay) != 1 {
		t.Fatalf("on-publish %q, on-play %q", got.OnPublish, got.OnPlay)
	}
	if _, err := LoadFile(writeFile(t, "rtmp:\n  - a\n  - b\n")); err == nil || !strings.Contains(err.Error(), ":2: rtmp: want a single value") {
		t.Fatalf("a list for a single-valued flag: %v", err)
	}
}

// TestFlagsAndEnvOverrideFile: flag > PEER_* > file > default.
func TestFlagsAndEnvOverrideFile(t *testing.T) {
	p := writeFile(t, "replicas: 1\nhls-window: 9\nmax-connections: 50\n")
	t.Setenv("PEER_HLS_WINDOW", "12")
	t.Setenv("PEER_MAX_CONNECTIONS", "60")
	got, err := parseWith(t, p, "--max-connections", "70")
	if err != nil {
		t.Fatal(err)
	}
	if got.Replicas != 1 || got.HLSWindow != 12 || got.MaxConnections != 70 {
		t.Fatalf("replicas %d (file 1), hls-window %d (env 12), max-connections %d (flag 70)",
			got.Replicas, got.HLSWindow, got.MaxConnections)
	}
}

// FuzzParseFile: any input is either a checked file or an error, never a panic.
func FuzzParseFile(f *testing.F) {
	f.Add([]byte("rtmp: 127.0.0.1:1935\nhls-fragment: 2s\n"))
	f.Add([]byte("# only a comment\n"))
	f.Add([]byte("a: &x [*x, *x]\n"))
	f.Add([]byte("- 1\n- 2\n"))
	f.Add([]byte("apps:\n  live:\n    hls-window: 3\n    on-play: [a, b]\n  x: {on-stop: []}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := ParseFile("fuzz.yaml", strings.NewReader(string(b)))
		if err == nil && file == nil {
			t.Fatal("nil file without an error")
		}
	})
}
