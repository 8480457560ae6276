// Package console is the web console every node serves under /console/: the cluster at
// a glance (members, streams, recent events) and a player page for each stream. It is
// plain HTML, CSS and JavaScript embedded in the binary; the two players it uses
// (mpegts.js for HTTP-FLV, hls.js for HLS) are vendored under assets/vendor/ by
// `make console-assets`, so a node serves the console with no network access.
//
// It is a leaf: the standard library only; ingress/web mounts it.
package console

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed assets
var assets embed.FS

// Prefix is where the console is mounted.
const Prefix = "/console/"

// policy keeps the pages to their own origin: scripts, styles and media from the node
// itself (media through MediaSource blobs, hls.js's worker from a blob), data from any
// node of the cluster (the page asks every member for its streams), no framing.
const policy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"media-src 'self' blob:; worker-src 'self' blob:; connect-src 'self' http: https:; " +
	"object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the console: its files under Prefix, and a redirect from "/" and
// "/console" to Prefix. Anything but GET and HEAD is refused: the console's files
// never change anything; its admin actions are POSTs to the API.
func Handler() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix(Prefix, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path == "/" || r.URL.Path == "/console" {
			http.Redirect(w, r, Prefix, http.StatusFound)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", policy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if strings.HasPrefix(r.URL.Path, Prefix+"vendor/") {
			h.Set("Cache-Control", "public, max-age=86400") // pinned versions; changed only by a new build
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		files.ServeHTTP(w, r)
	})
}

// Serves reports whether path is the console's: the handler takes these paths before
// the media routes (a stream under the app "console" cannot be played over HTTP).
func Serves(path string) bool {
	return path == "/" || path == "/console" || strings.HasPrefix(path, Prefix)
}
