package srs

import (
	"os"
	"strings"
	"testing"

	"peer/conf"
)

func importFile(t *testing.T, name string) *Result {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := Import(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return res
}

func settings(res *Result) map[string]string {
	m := map[string]string{}
	for _, s := range res.Settings {
		m[s.Key] = s.Value
	}
	return m
}

func hasNote(notes []Note, line int, part string) bool {
	for _, n := range notes {
		if n.Line == line && strings.Contains(n.Msg, part) {
			return true
		}
	}
	return false
}

// TestSeedConfigs imports the seed's five SRS files (../shared/seed/srs, copied into
// testdata as written there: the missing ';' after pid and the masked IPs included).
func TestSeedConfigs(t *testing.T) {
	common := func(port, api, http string) map[string]string {
		return map[string]string{"rtmp": "0.0.0.0:" + port, "max-connections": "1000", "api": "0.0.0.0:" + api, "http": "0.0.0.0:" + http}
	}
	cases := []struct {
		file  string
		want  map[string]string
		notes map[int]string // line -> part of a note
	}{
		{"master.conf", common("1945", "1995", "8180"), map[int]string{3: "missing ';'", 24: "done by the cluster"}},
		{"slave1.conf", common("1946", "1996", "8181"), map[int]string{3: "missing ';'", 18: "/metrics"}},
		{"slave2.conf", common("1947", "1997", "8182"), map[int]string{3: "missing ';'"}},
		{"edge1.conf", common("1948", "1998", "8183"), map[int]string{38: "done by the cluster", 39: "done by the cluster", 33: "hls-dir"}},
		{"edge2.conf", common("1949", "1999", "8184"), map[int]string{38: "done by the cluster", 39: "done by the cluster"}},
	}
	for _, c := range cases {
		res := importFile(t, c.file)
		got := settings(res)
		if strings.HasPrefix(c.file, "edge") {
			c.want["hls-fragment"], c.want["hls-window"] = "3s", "20" // 60 s window of 3 s segments
		}
		c.want["log-file"] = got["log-file"]
		if !strings.HasPrefix(got["log-file"], "./objs/logs/") {
			t.Errorf("%s: log-file %q", c.file, got["log-file"])
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q", c.file, k, got[k], v)
			}
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: settings %v, want %v", c.file, got, c.want)
		}
		for line, part := range c.notes {
			if !hasNote(res.Notes, line, part) {
				t.Errorf("%s: no note %q at line %d; notes %+v", c.file, part, line, res.Notes)
			}
		}
		if len(res.Warnings) != 0 {
			t.Errorf("%s: unexpected warnings %+v", c.file, res.Warnings)
		}
		// The output is a config file peer accepts.
		if _, err := conf.ParseFile(c.file+".yaml", strings.NewReader(res.YAML(c.file))); err != nil {
			t.Errorf("%s: imported config does not check:\n%v\n%s", c.file, err, res.YAML(c.file))
		}
	}
}

// TestUnknownDirectivesWarn: nothing is dropped silently.
func TestUnknownDirectivesWarn(t *testing.T) {
	src := "listen 1935;\nsrt_server { enabled on; }\nvhost v1 {\n  dvr { enabled on; }\n  http_hooks { on_publish http://127.0.0.1:8085/api/v1/streams; }\n}\n"
	res, err := Import(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	for line, part := range map[int]string{2: "srt_server", 3: "no vhosts", 4: "dvr"} {
		if !hasNote(res.Warnings, line, part) {
			t.Errorf("no warning for %q at line %d: %+v", part, line, res.Warnings)
		}
	}
}

// TestHooksImported: an http_hooks block becomes the node-wide hook lists, several URLs
// per event kept in order; hooks peer lacks warn; a disabled block imports nothing.
func TestHooksImported(t *testing.T) {
	src := `vhost __defaultVhost__ {
    http_hooks {
        enabled on;
        on_connect http://127.0.0.1:8085/api/v1/clients;
        on_publish http://127.0.0.1:8085/api/v1/streams http://127.0.0.1:8086/s;
        on_play    http://127.0.0.1:8085/api/v1/sessions;
        on_dvr     http://127.0.0.1:8085/api/v1/dvrs;
    }
}
`
	res, err := Import(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	got := settings(res)
	want := map[string]string{"on-connect": "http://127.0.0.1:8085/api/v1/clients",
		"on-publish": "http://127.0.0.1:8085/api/v1/streams,http://127.0.0.1:8086/s", "on-play": "http://127.0.0.1:8085/api/v1/sessions"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) || !hasNote(res.Warnings, 7, "no on_dvr hook") {
		t.Errorf("settings %v, warnings %+v", got, res.Warnings)
	}
	file, err := conf.ParseFile("hooks.yaml", strings.NewReader(res.YAML("srs.conf")))
	if err != nil {
		t.Fatalf("imported hooks do not check: %v\n%s", err, res.YAML("srs.conf"))
	}
	if file.Set()["on-publish"] == "" {
		t.Fatal("on-publish lost in the file")
	}
	off, err := Import(strings.NewReader(strings.Replace(src, "enabled on", "enabled off", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if len(off.Settings) != 0 || !hasNote(off.Notes, 2, "not imported") {
		t.Errorf("a disabled block: settings %v, notes %+v", off.Settings, off.Notes)
	}
}

func TestParseBounds(t *testing.T) {
	deep := strings.Repeat("a {", 100) + strings.Repeat("}", 100)
	if _, _, err := Parse(strings.NewReader(deep)); err == nil || !strings.Contains(err.Error(), "nested") {
		t.Fatalf("deep nesting: %v", err)
	}
	if _, _, err := Parse(strings.NewReader("a { b;")); err == nil {
		t.Fatal("an unclosed block parsed")
	}
	if _, _, err := Parse(strings.NewReader("}")); err == nil {
		t.Fatal("a stray '}' parsed")
	}
}

func FuzzImport(f *testing.F) {
	for _, name := range []string{"master.conf", "edge1.conf", "slave1.conf"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("a 'unterminated"))
	f.Add([]byte("a { b { c { } } } ; ; }"))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := Import(strings.NewReader(string(b)))
		if err == nil {
			_ = res.YAML("fuzz.conf")
		}
	})
}
