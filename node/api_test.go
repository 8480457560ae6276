package node

import (
	"net/http"
	"testing"

	"peer/conf"
)

// TestAPIListener: with --api the API and /metrics move to their own listener (SRS's
// http_api) and the HTTP port serves players only.
func TestAPIListener(t *testing.T) {
	n := startNode(t, func(c *conf.Node) { c.API = "http://127.0.0.1:0" })
	if n.APIAddr() == n.HTTPAddr() {
		t.Fatal("--api did not get a listener of its own")
	}
	for _, path := range []string{"/api/v1/versions", "/metrics"} {
		if resp, _ := httpGet(t, "http://"+n.APIAddr()+path); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s on the API port: %s", path, resp.Status)
		}
		if resp, _ := httpGet(t, n.httpURL(path)); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%s on the HTTP port with --api: %s, want 404", path, resp.Status)
		}
	}
	if resp, _ := httpGet(t, "http://"+n.APIAddr()+"/live/nobody.m3u8"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("a player path on the API port: %s", resp.Status)
	}
	if resp, _ := httpGet(t, n.httpURL("/live/nobody.m3u8")); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("HLS of a stream nobody publishes: %s, want 404", resp.Status)
	}
	if len(n.Hub().Streams()) != 0 {
		t.Fatal("an HLS request for a stream nobody publishes created it")
	}
}
