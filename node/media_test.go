package node

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"peer/chaos/avtest"
	"peer/conf"
)

func publish(t *testing.T, url string, o avtest.PublishOptions) *avtest.Proc {
	t.Helper()
	p, err := avtest.Publish(url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

func waitPublishing(t *testing.T, n *testNode, stream string) {
	t.Helper()
	app, name, _ := strings.Cut(stream, "/")
	eventually(t, 15*time.Second, stream+" to be published", func() bool {
		s := n.Hub().Lookup(app, name)
		return s != nil && s.Publishing()
	})
}

// TestSingleNode publishes one ffmpeg stream and plays it every way a player can.
func TestSingleNode(t *testing.T) {
	avtest.RequireTools(t)
	n := startNode(t, nil)
	pub := publish(t, n.rtmpURL("live/test?token=abc"), avtest.PublishOptions{})
	waitPublishing(t, n, "live/test")

	t.Run("RTMP", func(t *testing.T) { avtest.CheckPlayable(t, n.rtmpURL("live/test"), 0) })
	t.Run("HTTP-FLV", func(t *testing.T) {
		resp, err := (&httpClient).Get(n.httpURL("/live/test.flv"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Content-Type") != "video/x-flv" {
			t.Fatalf("headers: %v", resp.Header)
		}
		avtest.CheckPlayable(t, n.httpURL("/live/test.flv"), 0)
	})
	t.Run("HLS", func(t *testing.T) {
		eventually(t, 20*time.Second, "a playlist with 3 segments", func() bool {
			resp, err := httpClient.Get(n.httpURL("/live/test.m3u8"))
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200 && strings.Count(readPlaylist(t, n), "#EXTINF") >= 3
		})
		resp, body := httpGet(t, n.httpURL("/live/test.m3u8"))
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(resp.Header.Get("Cache-Control"), "no-cache") {
			t.Fatalf("playlist headers: %v", resp.Header)
		}
		pl := string(body)
		if !strings.Contains(pl, "#EXT-X-TARGETDURATION:") || !strings.Contains(pl, "#EXT-X-MEDIA-SEQUENCE:") {
			t.Fatalf("playlist:\n%s", pl)
		}
		seg := firstSegment(pl)
		resp, body = httpGet(t, n.httpURL("/live/"+seg))
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "video/mp2t" || len(body) == 0 || body[0] != 0x47 ||
			!strings.Contains(resp.Header.Get("Cache-Control"), "max-age") {
			t.Fatalf("segment %s: %s %v %d bytes", seg, resp.Status, resp.Header, len(body))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		streams, err := avtest.Probe(ctx, n.httpURL("/live/test.m3u8"))
		if err != nil || len(streams) < 2 {
			t.Fatalf("probe HLS: %v %+v", err, streams)
		}
	})
	t.Run("API", func(t *testing.T) {
		_, body := httpGet(t, n.httpURL("/api/v1/streams"))
		var out struct {
			Code    int
			Streams []struct {
				Name, App string
				Video     struct {
					Codec         string
					Width, Height int
				}
				Audio   struct{ Codec string }
				Publish struct{ Active bool }
				Kbps    struct {
					Recv30s float64 `json:"recv_30s"`
				}
			}
		}
		if err := json.Unmarshal(body, &out); err != nil || out.Code != 0 || len(out.Streams) != 1 {
			t.Fatalf("streams: %v %s", err, body)
		}
		s := out.Streams[0]
		if s.Name != "test" || s.App != "live" || s.Video.Codec != "H264" || s.Video.Width != 320 || s.Audio.Codec != "AAC" || !s.Publish.Active {
			t.Fatalf("stream: %s", body)
		}
		for _, path := range []string{"/api/v1/versions", "/api/v1/summaries", "/api/v1/clients", "/api/v1/cluster"} {
			resp, body := httpGet(t, n.httpURL(path))
			if resp.StatusCode != 200 || !strings.Contains(string(body), `"code":0`) {
				t.Fatalf("%s: %s %s", path, resp.Status, body)
			}
		}
		_, metrics := httpGet(t, n.httpURL("/metrics"))
		if !strings.Contains(string(metrics), `peer_stream_bytes_in_total{stream="live/test"}`) {
			t.Fatalf("metrics lack the stream:\n%.2000s", metrics)
		}
	})
	t.Run("SecondPublisherRefused", func(t *testing.T) {
		second := publish(t, n.rtmpURL("live/test"), avtest.PublishOptions{Duration: 5 * time.Second})
		select {
		case <-second.Done():
		case <-time.After(15 * time.Second):
			t.Fatal("second publisher was not refused")
		}
		if second.Err() == nil {
			t.Fatal("second publisher exited cleanly; want a refusal")
		}
		if !n.logged("publish refused", "already being published") {
			t.Fatal("refusal not logged")
		}
		select {
		case <-pub.Done():
			t.Fatalf("first publisher stopped: %v %s", pub.Err(), pub.Stderr)
		default:
		}
		avtest.CheckPlayable(t, n.rtmpURL("live/test"), 0)
	})
	t.Run("SlowPlayerDoesNotStallFast", func(t *testing.T) {
		// A player that sends its request and never reads.
		slow, err := net.Dial("tcp", n.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer slow.Close()
		slow.(*net.TCPConn).SetReadBuffer(4096)
		slow.Write([]byte("GET /live/test.flv HTTP/1.1\r\nHost: x\r\n\r\n"))
		time.Sleep(time.Second)
		avtest.CheckPlayable(t, n.httpURL("/live/test.flv"), 0)
		avtest.CheckPlayable(t, n.rtmpURL("live/test"), 0)
	})
}

var httpClient = http.Client{Timeout: 10 * time.Second}

func readPlaylist(t *testing.T, n *testNode) string {
	_, body := httpGet(t, n.httpURL("/live/test.m3u8"))
	return string(body)
}

func firstSegment(playlist string) string {
	for _, line := range strings.Split(playlist, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// TestExtendedTimestamps publishes past 2^24 ms (4h40m), where go-rtmp v0.0.7 panics,
// and plays the stream end to end.
func TestExtendedTimestamps(t *testing.T) {
	avtest.RequireTools(t)
	n := startNode(t, nil)
	publish(t, n.rtmpURL("live/long"), avtest.PublishOptions{TSOffset: 17000 * time.Second})
	waitPublishing(t, n, "live/long")
	avtest.CheckPlayable(t, n.rtmpURL("live/long"), 17000)
	avtest.CheckPlayable(t, n.httpURL("/live/long.flv"), 17000)
}

// TestMaxConnections refuses media sessions past the limit, keeps the API answering
// while it is reached, and serves again once a slot frees.
func TestMaxConnections(t *testing.T) {
	n := startNode(t, func(c *conf.Node) { c.MaxConnections = 2 })
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", n.RTMPAddr())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	eventually(t, 5*time.Second, "2 active connections", func() bool { return n.limit.Active() == 2 })
	extra, err := net.Dial("tcp", n.RTMPAddr())
	if err != nil {
		t.Fatal(err)
	}
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection over the limit was served")
	}
	extra.Close()
	if !n.logged("max_connections") {
		t.Fatal("refusal not logged")
	}
	if resp, _ := httpGet(t, n.httpURL("/live/test.flv")); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("HTTP-FLV player over the limit: %s", resp.Status)
	}
	for _, path := range []string{"/api/v1/versions", "/metrics"} {
		if resp, _ := httpGet(t, n.httpURL(path)); resp.StatusCode != 200 {
			t.Fatalf("%s while max_connections is reached: %s", path, resp.Status)
		}
	}
	for _, c := range held {
		c.Close()
	}
	eventually(t, 5*time.Second, "slots to free", func() bool { return n.limit.Active() == 0 })
	resp, _ := httpGet(t, n.httpURL("/api/v1/versions"))
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
}

// TestOtherCodecsPassThrough: MP3 audio is not H.264/AAC; RTMP and HTTP-FLV players get
// it untouched and HLS says why it leaves it out.
func TestOtherCodecsPassThrough(t *testing.T) {
	avtest.RequireTools(t)
	n := startNode(t, nil)
	publish(t, n.rtmpURL("live/mp3"), avtest.PublishOptions{Extra: []string{"-c:a", "libmp3lame", "-ar", "44100"}})
	waitPublishing(t, n, "live/mp3")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, url := range []string{n.rtmpURL("live/mp3"), n.httpURL("/live/mp3.flv")} {
		streams, err := avtest.Probe(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		var mp3 bool
		for _, s := range streams {
			mp3 = mp3 || s.CodecName == "mp3"
		}
		if !mp3 {
			t.Fatalf("%s: no mp3 stream in %+v", url, streams)
		}
	}
	eventually(t, 10*time.Second, "HLS to log the skipped codec", func() bool { return n.logged("track not packaged", "MP3") })
}
