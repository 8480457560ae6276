package hls

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"peer/media"
	"peer/media/flv"
)

// FLV bodies the hub tests publish: a real H.264 sequence header (64x64 baseline, from
// ffmpeg), so that an origin's packager makes its own cuts, and frames of it.
var (
	avcSeq64 = []byte{0x17, 0, 0, 0, 0, 0x01, 0x42, 0xc0, 0x0a, 0xff, 0xe1, 0x00, 0x16, 0x67, 0x42, 0xc0,
		0x0a, 0xda, 0x10, 0x9b, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1,
		0x22, 0x6a, 0x01, 0x00, 0x04, 0x68, 0xce, 0x0f, 0xc8}
	hubKeyframe = []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65}
	hubInterFr  = []byte{0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41}
)

// packagedHub is a media hub whose streams pk packages.
func packagedHub(t *testing.T, pk Packaging, placed func(app, name string) bool) *media.Hub {
	t.Helper()
	cfg := media.DefaultConfig()
	cfg.Packagers = []media.NewPackager{pk.New}
	cfg.Placed = placed
	h := media.NewHub(cfg, zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

// A copy is packaged only while HLS is asked for on this node, from the segment in
// progress; the origin's stream always is.
func TestCopyPackagesOnlyWhenAsked(t *testing.T) {
	h := packagedHub(t, DefaultPackaging(), nil)
	master, _ := h.Publish("live", "m", "x", media.Origin)
	copied, _ := h.Publish("live", "c", "node:n1", media.Copy)
	frames := 0
	play := func(n int) { // 25 fps, a keyframe and (on the copy) a cut every second
		for end := frames + n; frames < end; frames++ {
			ms, body := int64(frames*40), hubInterFr
			if frames%25 == 0 {
				body = hubKeyframe
				copied.WriteAt(flv.TypeScript, ms, CutMarker(Cut{Seq: uint64(frames / 25)}, ms).Data())
			}
			master.WriteAt(flv.TypeVideo, ms, body)
			copied.WriteAt(flv.TypeVideo, ms, body)
		}
	}
	master.Write(flv.TypeVideo, 0, avcSeq64)
	copied.Write(flv.TypeVideo, 0, avcSeq64)
	play(75 + 12) // to mid-segment 3
	m, c := Of(h.Lookup("live", "m")), Of(h.Lookup("live", "c"))
	if _, ok := m.Playlist(); !ok {
		t.Fatal("the master did not package")
	}
	if _, ok := c.Playlist(); ok || !c.asleep {
		t.Fatal("a copy nobody asked HLS of was packaged")
	}
	if _, _, err := Watch(h, "live", "c"); err != nil {
		t.Fatal(err)
	}
	play(25)
	p, ok := c.Playlist()
	if !ok || !strings.Contains(string(p), "c/3.ts") {
		t.Fatalf("asked mid-segment 3, the copy lists:\n%s", p)
	}
	h.Lookup("live", "c").Packagers()[0].(*packager).idle = time.Nanosecond // the request is past
	play(25)
	if _, ok := c.Playlist(); ok {
		t.Fatal("the copy kept packaging with nobody asking")
	}
}

// A stream of an app takes its app's fragment and window when created; a stream of
// another app keeps the hub's.
func TestPerAppPackaging(t *testing.T) {
	pk := DefaultPackaging()
	pk.ForApp = func(app string, c *Config) {
		if app == "live" {
			c.Fragment, c.Window = 4*time.Second, 2
		}
	}
	h := packagedHub(t, pk, nil)
	live, _ := h.Publish("live", "a", "x", media.Origin)
	other, _ := h.Publish("other", "a", "x", media.Origin)
	live.Write(flv.TypeVideo, 0, avcSeq64)
	other.Write(flv.TypeVideo, 0, avcSeq64)
	for f := 0; f < 25*20; f++ { // 20 s at 25 fps, a keyframe every second
		ms, body := int64(f*40), hubInterFr
		if f%25 == 0 {
			body = hubKeyframe
		}
		live.WriteAt(flv.TypeVideo, ms, body)
		other.WriteAt(flv.TypeVideo, ms, body)
	}
	lp, ok := Of(h.Lookup("live", "a")).Playlist()
	if !ok || !strings.Contains(string(lp), "#EXT-X-TARGETDURATION:4\n") || strings.Count(string(lp), "#EXTINF") != 2 {
		t.Fatalf("live's playlist, want 4 s segments, 2 of them:\n%s", lp)
	}
	op, ok := Of(h.Lookup("other", "a")).Playlist()
	if !ok || !strings.Contains(string(op), "#EXT-X-TARGETDURATION:2\n") || strings.Count(string(op), "#EXTINF") != 6 {
		t.Fatalf("other's playlist, want the hub's 2 s segments, 6 of them:\n%s", op)
	}
}

// A published stream's segments are DIR/app/name/N.ts; HLS requests for
// streams nobody publishes, and players waiting for one, leave nothing in DIR.
func TestPackagingDirLayout(t *testing.T) {
	dir := t.TempDir()
	pk := DefaultPackaging()
	pk.Dir, pk.Idle = dir, 0
	h := packagedHub(t, pk, func(app, name string) bool { return app+"/"+name == "live/placed" })
	for range 100 {
		if _, _, err := Watch(h, "live", "nobody"); !errors.Is(err, media.ErrNoStream) {
			t.Fatalf("HLS request of an unknown stream: %v", err)
		}
	}
	p, err := h.Play("live", "later", media.PlayOptions{Kind: "flv-play"})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	pub, _ := h.Publish("live", "here", "x", media.Origin)
	pub.Write(flv.TypeVideo, 0, avcSeq64)
	for f := range 25 * 5 {
		body := hubInterFr
		if f%25 == 0 {
			body = hubKeyframe
		}
		pub.WriteAt(flv.TypeVideo, int64(f*40), body)
	}
	if _, err := os.Stat(filepath.Join(dir, "live", "here", "0.ts")); err != nil {
		t.Fatal(err)
	}
	// The playlist is DIR/app/name.m3u8 and lists name/N.ts: the HTTP URLs' layout.
	// (It was never written: its temporary file was made with "../" in its pattern.)
	playlist, err := os.ReadFile(filepath.Join(dir, "live", "here.m3u8"))
	if err != nil || !strings.Contains(string(playlist), "here/0.ts") {
		t.Fatalf("DIR/live/here.m3u8: %v\n%s", err, playlist)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "live"))
	for _, e := range entries {
		if e.Name() != "here" && e.Name() != "here.m3u8" {
			t.Errorf("in DIR/live: %s", e.Name())
		}
	}
}
