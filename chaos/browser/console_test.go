package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"peer/chaos/avtest"
	"peer/chaos/procs"
)

const stream = "live/test"

// adminToken is the --api-token the nodes get when the binary has the flag.
const adminToken = "secret"

// TestConsole runs every browser check on one 3-node cluster and one browser.
//
// The publisher reaches n3, which may master one stream only and already masters a
// filler stream, so live/test is mastered elsewhere and n3 relays it: killing the master
// then loses no publisher. The pages are opened on the third node, which neither masters
// the stream nor holds its publisher.
func TestConsole(t *testing.T) {
	avtest.RequireTools(t)
	browser := newBrowser(t)
	token := hasFlag(t, "--api-token")
	c := &procs.Cluster{Bin: peerBin, Key: "browser-test-key", Dir: t.TempDir()}
	t.Cleanup(func() {
		if t.Failed() {
			for _, nd := range c.Nodes {
				t.Logf("---- log of %s (last 4000 bytes):\n%s", nd.Name, tail(nd.Logs(), 4000))
			}
		}
		c.StopAll()
	})
	for i := range 3 {
		var extra []string
		if token {
			extra = append(extra, "--api-token", adminToken)
		}
		if i == 2 {
			extra = append(extra, "--max-streams", "1")
		}
		nd := c.NewNode(fmt.Sprintf("n%d", i+1), extra...)
		var seeds []string
		if i > 0 {
			seeds = []string{c.Nodes[0].Gossip}
		}
		if err := nd.Start(seeds...); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, "an agreed cluster of three", func() bool {
		_, ok := procs.Agreed(context.Background(), c.Nodes, 3)
		return ok
	})
	ingress := c.Nodes[2]
	publish(t, "rtmp://"+ingress.RTMP+"/live/filler")
	eventually(t, 20*time.Second, "the filler mastered at n3", func() bool {
		a, ok := assignment(ingress, "live/filler")
		return ok && a.Master == ingress.Name
	})
	publish(t, "rtmp://"+ingress.RTMP+"/"+stream)
	var a procs.Assignment
	eventually(t, 20*time.Second, stream+" placed with replicas", func() bool {
		var ok bool
		a, ok = assignment(ingress, stream)
		return ok && a.Master != ingress.Name && len(a.Replicas) > 0
	})
	master := c.ByName(a.Master)
	watcher := c.Others(master.Name, ingress.Name)[0]
	base := "http://" + watcher.HTTP
	t.Logf("%s masters %s, published at %s; the browser uses %s", master.Name, stream, ingress.Name, watcher.Name)

	t.Run("ConsoleListsMembersAndStream", func(t *testing.T) {
		tab, cancel := newTab(t, browser)
		defer cancel()
		do(t, tab, chromedp.Navigate(base+"/"))
		pollJS(t, tab, 30*time.Second, "three alive members and "+stream+" with its master on the page", fmt.Sprintf(`(() => {
			const alive = [...document.querySelectorAll("#members tbody tr[data-member]")]
				.filter((r) => r.querySelector(".badge.alive")).length;
			const s = document.querySelector('#streams tr[data-stream=%q]');
			return location.pathname === "/console/" && alive === 3 && !!s && s.children[1].textContent === %q &&
				s.children[5].textContent.startsWith("H264");
		})()`, stream, master.Name))
		if eval[bool](t, tab, `!document.getElementById("degraded").hidden`) {
			t.Error("the console shows degraded mode in a healthy cluster")
		}
	})

	// "native" is the browser's own HLS, which Chromium has had since version 141 or so.
	for _, proto := range []string{"flv", "hls", "native"} {
		t.Run("PlaysOnNonMaster/"+proto, func(t *testing.T) {
			tab, cancel := newTab(t, browser)
			defer cancel()
			do(t, tab, chromedp.Navigate(playerURL(base, proto)))
			if proto == "native" && eval[string](t, tab, `window.peerPlayer.proto`) != "native" {
				t.Skip("this browser has no HLS of its own")
			}
			waitPlayed(t, tab, 10, 90*time.Second)
			if *screenshots != "" && proto == "flv" {
				shoot(t, tab, "player.png")
			}
			checkNoVideoError(t, tab)
		})
	}

	t.Run("KickFromConsole", func(t *testing.T) {
		player, cancel := newTab(t, browser)
		defer cancel()
		do(t, player, chromedp.Navigate(playerURL(base, "flv")))
		waitPlayed(t, player, 2, 60*time.Second)
		tab, cancel2 := newTab(t, browser)
		defer cancel2()
		do(t, tab, chromedp.Navigate(base+"/console/"))
		if token { // the kick is an admin action: the operator types the token first
			// Once the page's script has taken over the form (a submit before that would
			// reload the page instead of keeping the token).
			pollJS(t, tab, 20*time.Second, "the console's script loaded", `typeof peer !== "undefined" && document.querySelector("#clients tbody tr") !== null`)
			// A click, as an operator does: chromedp.Submit calls form.submit(), which skips
			// the page's submit handler and reloads the page.
			do(t, tab, chromedp.SendKeys(chromedp.ID("token"), adminToken),
				chromedp.Click(`#admin-form button[type="submit"]`))
			pollJS(t, tab, 10*time.Second, "the token kept", `sessionStorage.getItem("peer-admin-token") === "`+adminToken+`"`)
		}
		// The newest HTTP-FLV client is this test's player (clients are listed by id).
		pollJS(t, tab, 20*time.Second, "the player listed with a kick button", `(() => {
			const rows = [...document.querySelectorAll("#clients tbody tr")].filter((r) => r.children[2].textContent === "flv-play");
			if (!rows.length) return false;
			rows[rows.length - 1].querySelector("button.kick").click();
			return true;
		})()`)
		pollJS(t, tab, 20*time.Second, "the kick answered", `document.getElementById("admin-result").dataset.status !== undefined`)
		if status := eval[string](t, tab, `document.getElementById("admin-result").dataset.status`); status != "200" {
			t.Fatalf("kick answered %s: %s", status, eval[string](t, tab, `document.getElementById("admin-result").textContent`))
		}
		// The kicked player notices and rebuilds itself, then plays on.
		pollJS(t, player, 30*time.Second, "the kicked player rebuilt", `window.peerPlayer.restarts >= 1`)
		waitPlayed(t, player, played(t, player)+3, 60*time.Second)
	})

	t.Run("ResumesAfterMasterKill", func(t *testing.T) {
		tabs := map[string]context.Context{}
		for _, proto := range []string{"flv", "hls"} {
			tab, cancel := newTab(t, browser)
			defer cancel()
			do(t, tab, chromedp.Navigate(playerURL(base, proto)))
			eval[bool](t, tab, `window.loadedOnce = true`)
			tabs[proto] = tab
		}
		before := map[string]float64{}
		for proto, tab := range tabs {
			waitPlayed(t, tab, 3, 90*time.Second)
			before[proto] = played(t, tab)
		}
		if *screenshots != "" { // the console with the two players counted
			tab, cancel := newTab(t, browser)
			defer cancel()
			do(t, tab, chromedp.Navigate(base+"/console/"))
			pollJS(t, tab, 30*time.Second, "the players counted", fmt.Sprintf(`(() => {
				const s = document.querySelector('#streams tr[data-stream=%q]');
				return !!s && s.children[9].textContent === "1" && s.children[10].textContent === "1";
			})()`, stream))
			shoot(t, tab, "console.png")
		}
		master.Kill()
		t.Logf("SIGKILLed the master %s at played %v", master.Name, before)
		for proto, tab := range tabs {
			waitPlayed(t, tab, before[proto]+10, 120*time.Second)
			if !eval[bool](t, tab, `window.loadedOnce === true`) {
				t.Errorf("%s: the page was reloaded", proto)
			}
			t.Logf("%s after the kill: %v", proto, eval[map[string]any](t, tab, `window.peerPlayer`))
		}
		eventually(t, 20*time.Second, "the master change in "+watcher.Name+"'s events", func() bool {
			return hasEvent(watcher, "master", stream) && hasEvent(watcher, "fail", "")
		})
	})

	t.Run("AdminActionNeedsToken", func(t *testing.T) {
		if !token {
			t.Skip("needs --api-token")
		}
		tab, cancel := newTab(t, browser)
		defer cancel()
		// The drain button asks for confirmation first: accept it, as an operator would.
		dialogs := chromedp.Events(tab, page.JavascriptDialogOpening)
		go func() {
			for _, err := range dialogs {
				if err != nil {
					return
				}
				chromedp.Call(tab, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
			}
		}()
		do(t, tab, chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.ID("drain")), chromedp.Click(chromedp.ID("drain")))
		pollJS(t, tab, 30*time.Second, "the drain answered", `document.getElementById("admin-result").dataset.status !== undefined`)
		status := eval[string](t, tab, `document.getElementById("admin-result").dataset.status`)
		if status != "401" && status != "403" {
			t.Fatalf("drain without the token answered %s, want 401 or 403", status)
		}
		if v, err := watcher.View(context.Background()); err != nil || len(v.Members) == 0 {
			t.Fatalf("the node is gone after a refused drain: %v", err)
		}
	})

	t.Run("DegradedWithoutLeader", func(t *testing.T) {
		// With the master dead, stopping the ingress leaves the watcher alone: one voter
		// of three, no leader.
		ingress.Kill()
		tab, cancel := newTab(t, browser)
		defer cancel()
		do(t, tab, chromedp.Navigate(base+"/console/"))
		pollJS(t, tab, 60*time.Second, "the degraded banner", `!document.getElementById("degraded").hidden`)
	})
}

func playerURL(base, proto string) string {
	return base + "/console/stream.html?s=" + stream + "&proto=" + proto
}

// hasFlag reports whether `peer run --help` lists flag.
func hasFlag(t *testing.T, flag string) bool {
	out, err := exec.Command(peerBin, "run", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("peer run --help: %v\n%s", err, out)
	}
	return strings.Contains(string(out), flag)
}

// newTab opens a tab of the browser. Its first action runs on the tab's own context
// (chromedp ties the tab's life to that call's context, so it has no timeout).
func newTab(t *testing.T, browser context.Context) (context.Context, context.CancelFunc) {
	t.Helper()
	tab, cancel := chromedp.NewContext(browser)
	if err := chromedp.Do(tab); err != nil {
		cancel()
		t.Fatalf("opening a tab: %v", err)
	}
	return tab, cancel
}

// do runs steps in tab, bounded in time.
func do(t *testing.T, tab context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// eval evaluates the JavaScript expression js in tab, bounded in time.
func eval[T any](t *testing.T, tab context.Context, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// pollJS evaluates the boolean expression js until it holds, at most for timeout.
func pollJS(t *testing.T, tab context.Context, timeout time.Duration, what, js string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if eval[bool](t, tab, js) {
			return
		}
		if time.Now().After(deadline) {
			body := eval[string](t, tab, `document.body.innerText`)
			t.Fatalf("timed out after %v waiting for %s; the page says:\n%s", timeout, what, tail(body, 3000))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// played is the page's count of seconds of media played (summed over player rebuilds).
func played(t *testing.T, tab context.Context) float64 {
	t.Helper()
	return eval[float64](t, tab, `window.peerPlayer ? window.peerPlayer.played : 0`)
}

// waitPlayed polls until the page has played at least want seconds of media.
func waitPlayed(t *testing.T, tab context.Context, want float64, timeout time.Duration) {
	t.Helper()
	pollJS(t, tab, timeout, fmt.Sprintf("%.0f s of media played", want),
		fmt.Sprintf(`!!window.peerPlayer && window.peerPlayer.played >= %f`, want))
}

func checkNoVideoError(t *testing.T, tab context.Context) {
	t.Helper()
	st := eval[struct {
		VideoErrors int    `json:"videoErrors"`
		Restarts    int    `json:"restarts"`
		LastError   string `json:"lastError"`
	}](t, tab, `window.peerPlayer`)
	if st.VideoErrors > 0 {
		t.Fatalf("the video element fired %d error events (last: %s)", st.VideoErrors, st.LastError)
	}
	if st.LastError != "" {
		t.Logf("a problem the player recovered from: %s (%d restarts)", st.LastError, st.Restarts)
	}
}

// shoot writes a PNG of the tab's viewport into the -screenshots directory.
func shoot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	do(t, tab, chromedp.Sleep(2500*time.Millisecond))
	ctx, cancel := context.WithTimeout(tab, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(*screenshots, name)
	if err = os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}

// hasEvent reports whether n's /api/v1/events lists an event of kind (for stream, if set).
func hasEvent(n *procs.Node, kind, stream string) bool {
	resp, err := http.Get("http://" + n.HTTP + "/api/v1/events")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var body struct {
		Events []struct{ Kind, Stream string }
	}
	if json.NewDecoder(resp.Body).Decode(&body) != nil {
		return false
	}
	for _, e := range body.Events {
		if e.Kind == kind && (stream == "" || e.Stream == stream) {
			return true
		}
	}
	return false
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func assignment(n *procs.Node, stream string) (procs.Assignment, bool) {
	v, err := n.View(context.Background())
	if err != nil {
		return procs.Assignment{}, false
	}
	return v.Stream(stream)
}

func publish(t *testing.T, url string) *avtest.Proc {
	t.Helper()
	p, err := avtest.Publish(url, avtest.PublishOptions{Size: "640x360"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
