package node

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"peer/chaos/avtest"
)

// requireClients fails the test under CI when a client program or GStreamer element is
// missing, and skips it elsewhere (as avtest.RequireTools does for ffmpeg).
func requireClients(t *testing.T, programs []string, elements []string) {
	t.Helper()
	missing := func(what string, err error) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required under CI (scripts/install-tools.sh): %v", what, err)
		}
		t.Skipf("%s not installed", what)
	}
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			missing(p, err)
		}
	}
	for _, e := range elements {
		if err := exec.Command("gst-inspect-1.0", e).Run(); err != nil {
			missing("GStreamer element "+e, err)
		}
	}
}

// runClient runs a client to its end, bounded by timeout, and returns its output.
func runClient(t *testing.T, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// gstPlay plays url with a GStreamer source (rtmp2src or rtmpsrc) through flvdemux and
// the H.264 decoder into a fakesink, and returns how many decoded frames arrived.
func gstPlay(t *testing.T, src ...string) int {
	t.Helper()
	args := append(append([]string{"-v"}, src...), strings.Fields("num-buffers=150 ! flvdemux name=d "+
		"d.video ! queue ! h264parse ! avdec_h264 ! fakesink name=frames silent=false sync=false d.audio ! queue ! fakesink")...)
	out, err := runClient(t, 30*time.Second, "gst-launch-1.0", args...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", src, err, tail(out, 3000))
	}
	return strings.Count(out, "(frames:sink) (")
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestGStreamerPublishPlay publishes H.264 + AAC with GStreamer's rtmp2sink and plays it
// back with rtmp2src and the librtmp-based rtmpsrc. rtmp2 reads the message stream id
// of the server's replies and fails when it is not little-endian.
func TestGStreamerPublishPlay(t *testing.T) {
	avtest.RequireTools(t)
	requireClients(t, []string{"gst-launch-1.0", "gst-inspect-1.0"},
		[]string{"rtmp2sink", "rtmp2src", "rtmpsrc", "x264enc", "avenc_aac", "flvmux", "flvdemux", "avdec_h264"})
	n := startNode(t, nil)
	url := n.rtmpURL("live/gst")
	pub, err := avtest.Start("gst-launch-1.0", strings.Fields("-e videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=25/1 ! "+
		"x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 ! h264parse ! queue ! flvmux name=mux streamable=true ! "+
		"rtmp2sink location="+url+" audiotestsrc is-live=true ! audioconvert ! audioresample ! audio/x-raw,rate=44100,channels=2 ! "+
		"avenc_aac ! aacparse ! queue ! mux.")...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Stop)
	waitPublishing(t, n, "live/gst")
	avtest.CheckPlayable(t, url, 0)
	for _, src := range [][]string{{"rtmp2src", "location=" + url}, {"rtmpsrc", `location="` + url + ` live=1"`}} {
		if frames := gstPlay(t, src...); frames < 10 {
			t.Errorf("%s: %d frames decoded", src[0], frames)
		}
	}
	select {
	case <-pub.Done():
		t.Fatalf("rtmp2sink ended: %v\n%s", pub.Err(), pub.Stderr)
	default:
	}
}

// TestPlayerClientsQuiet plays with rtmpdump (librtmp, as OBS and many players use it),
// which must get media without logging that the handshake signature does not match, and
// with ffmpeg, which must not warn about the answer to its getStreamLength call.
func TestPlayerClientsQuiet(t *testing.T) {
	avtest.RequireTools(t)
	requireClients(t, []string{"rtmpdump"}, nil)
	n := startNode(t, nil)
	url := n.rtmpURL("live/quiet")
	publish(t, url, avtest.PublishOptions{})
	waitPublishing(t, n, "live/quiet")
	// Plain, librtmp checks that S2 echoes C1; given a SWF hash it does the Flash Player 9
	// handshake and checks the server's digests.
	for name, extra := range map[string][]string{"rtmpdump": nil, "rtmpdump-fp9": {"--swfhash", strings.Repeat("0", 64), "--swfsize", "1000"}} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "out.flv")
			args := append([]string{"-V", "-r", url, "--live", "--stop", "2", "-o", file}, extra...)
			out, _ := runClient(t, 6*time.Second, "rtmpdump", args...)
			if strings.Contains(out, "signature does not match") || strings.Contains(out, "not genuine") || strings.Contains(out, "Couldn't verify") {
				t.Fatalf("librtmp rejected the handshake:\n%s", tail(out, 3000))
			}
			if extra != nil && !strings.Contains(out, "Genuine Adobe Flash Media Server") {
				t.Fatalf("librtmp did not do the digest handshake:\n%s", tail(out, 3000))
			}
			st, err := os.Stat(file)
			if err != nil || st.Size() < 10<<10 {
				t.Fatalf("rtmpdump recorded %v bytes (%v):\n%s", st, err, tail(out, 3000))
			}
		})
	}
	t.Run("ffmpeg", func(t *testing.T) {
		out, err := runClient(t, 20*time.Second, "ffmpeg", "-hide_banner", "-loglevel", "warning", "-i", url, "-t", "1", "-f", "null", "-")
		if err != nil || strings.Contains(out, "Unexpected reply") {
			t.Fatalf("ffmpeg: %v\n%s", err, tail(out, 3000))
		}
	})
}
