// Package browser drives the web console in a real browser (Debian's chromium, through
// chromedp) against real peer processes: the cluster page lists a 3-node cluster and its
// stream, the player plays HTTP-FLV and HLS from a node that does not master the stream,
// keeps playing when the master is SIGKILLed, and an admin action without the token is
// refused.
package browser

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"testing"

	"github.com/chromedp/chromedp"

	"peer/chaos/procs"
)

var (
	peerBin     string
	screenshots = flag.String("screenshots", "", "write console.png and player.png into this directory (make screenshots)")
)

// TestMain builds the peer binary once, or takes PEER_BIN.
func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(procs.RunWithBinary(m, "../..", &peerBin, nil))
}

// chromium finds the browser scripts/install-tools.sh installs. Without it the browser
// tests skip on a developer's machine but fail under CI, where the tool script ran.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is missing (scripts/install-tools.sh installs it)")
	}
	t.Skip("chromium is not installed (make tools installs it)")
	return ""
}

// newBrowser starts one headless chromium for the whole test; tabs are its children.
// Cancelling the returned context ends the browser process.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	// chromedp's defaults (headless, no first run, no background networking, no sync,
	// no timer throttling of background tabs, ...) and what a test machine needs more.
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, // required as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.WindowSize(1280, 860),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		bcancel()
		acancel()
		t.Fatalf("starting chromium: %v", err)
	}
	t.Cleanup(func() { bcancel(); acancel() })
	return bctx
}
