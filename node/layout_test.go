package node

import (
	"os/exec"
	"strings"
	"testing"
)

// layers is the layout's dependency direction (docs/design.md, "Packages"): a package
// may import only packages of a lower layer. Protocol servers sit above the cluster's
// data plane, which sits above the media core; packagers read the core; leaves import
// nothing of peer's. A new package gets a line here, which is where a reviewer sees
// what it may depend on.
var layers = map[string]int{
	// Leaves: codecs without stream state, sockets, helpers.
	"peer/conf/ratelog":          0,
	"peer/media/flv":             0,
	"peer/media/amf0":            0,
	"peer/media/netio":           0,
	"peer/media/mpegts":          0,
	"peer/media/rtmp/chunk":      0,
	"peer/media/rtmp/handshake":  0,
	"peer/membership/bus":        0,
	"peer/media/internal/allocs": 0,
	"peer/ingress/console":       0,
	"peer/conf/srs":              0,
	// The media core; what reads it (packagers) or writes it (ingest adapters, the RTMP
	// protocol and its client, which links use) without any cluster.
	"peer/media":        1,
	"peer/media/hls":    2,
	"peer/media/ingest": 2,
	"peer/media/rtmp":   3,
	// The control plane, then the data plane on top of it.
	"peer/membership":          2,
	"peer/placement":           3,
	"peer/placement/dataplane": 4,
	// Protocol servers and what they share.
	"peer/ingress/admit": 5,
	"peer/ingress/limit": 5,
	"peer/ingress/rtmp":  6,
	"peer/ingress/web":   6,
	// Configuration maps onto every layer's settings; node composes them all.
	"peer/conf": 7,
	"peer/node": 8,
}

// TestLayout fails on an import against the layers above, and on a package missing from
// them (cmd and chaos, the programs and the tests, may import anything).
func TestLayout(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "peer/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := fields[0]
		if strings.HasPrefix(pkg, "peer/cmd/") || pkg == "peer/chaos" || strings.HasPrefix(pkg, "peer/chaos/") {
			continue
		}
		layer, ok := layers[pkg]
		if !ok {
			t.Errorf("%s has no layer in layout_test.go: say what it may import", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, "peer/") {
				continue
			}
			switch l, ok := layers[imp]; {
			case !ok:
				t.Errorf("%s imports %s, which has no layer in layout_test.go", pkg, imp)
			case l >= layer:
				t.Errorf("%s (layer %d) imports %s (layer %d): imports go to lower layers only", pkg, layer, imp, l)
			}
		}
	}
}
