package console

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestEventsKeepTheLastN(t *testing.T) {
	e := NewEvents(3)
	if got := e.List(); len(got) != 0 {
		t.Fatalf("empty ring lists %v", got)
	}
	for i := range 5 {
		e.Add(Event{Kind: "join", Node: string(rune('a' + i))})
	}
	got := e.List()
	if len(got) != 3 || got[0].Node != "c" || got[2].Node != "e" || got[0].Seq != 3 || got[2].Seq != 5 {
		t.Fatalf("List = %+v, want c, d, e with seq 3..5", got)
	}
	if got[0].Time.IsZero() || time.Since(got[0].Time) > time.Minute {
		t.Fatalf("events are stamped with the time: %v", got[0].Time)
	}
}

// The console with its players stays small (the budget: under 1 MB), and every
// file is served with its type and the page's security headers.
func TestAssetsAreSmallAndServed(t *testing.T) {
	var total int64
	h := Handler()
	types := map[string]string{".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
	err := fs.WalkDir(assets, "assets", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		total += info.Size()
		url := Prefix + strings.TrimSuffix(strings.TrimPrefix(path, "assets/"), "index.html") // index.html is served as the folder
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", url, nil))
		if w.Code != http.StatusOK || int64(w.Body.Len()) != info.Size() {
			t.Errorf("GET %s = %d, %d bytes of %d", url, w.Code, w.Body.Len(), info.Size())
		}
		for ext, ct := range types {
			if strings.HasSuffix(path, ext) && !strings.HasPrefix(w.Header().Get("Content-Type"), ct) {
				t.Errorf("GET %s: Content-Type %q, want %s", url, w.Header().Get("Content-Type"), ct)
			}
		}
		if !strings.Contains(w.Header().Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("GET %s: no content security policy", url)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if total > 1<<20 {
		t.Fatalf("the console's files add up to %d bytes, over 1 MiB", total)
	}
	t.Logf("console assets: %d bytes", total)
}

// The pages load nothing from elsewhere: no CDN, no external fonts.
func TestNoExternalResources(t *testing.T) {
	for _, name := range []string{"index.html", "stream.html", "console.css", "common.js", "cluster.js", "player.js"} {
		b, err := assets.ReadFile("assets/" + name)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"src=\"http", "href=\"http", "@import", "url(http", "//cdn", "fonts.g"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s contains %q", name, bad)
			}
		}
	}
}

func TestRedirectsAndMethods(t *testing.T) {
	h := Handler()
	for _, path := range []string{"/", "/console"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != http.StatusFound || w.Header().Get("Location") != Prefix {
			t.Errorf("GET %s = %d -> %q", path, w.Code, w.Header().Get("Location"))
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("DELETE", Prefix+"index.html", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("DELETE = %d, want 405", w.Code)
	}
	if !Serves("/console/x.js") || !Serves("/") || Serves("/live/test.flv") || Serves("/consoles/a") {
		t.Error("Serves claims the wrong paths")
	}
}
