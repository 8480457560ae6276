package attack

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"peer/chaos/avtest"
	"peer/media/flv"
	"peer/media/rtmp"
)

// sourceTags encodes seconds of H.264 (keyframe every second) + AAC test media with
// ffmpeg and returns its tags: what a hostile publisher starts from.
func sourceTags(t *testing.T, seconds int) []*flv.Tag {
	t.Helper()
	out := filepath.Join(t.TempDir(), "src.flv")
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "64k", "-t", strconv.Itoa(seconds), "-f", "flv", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := flv.NewReader(f)
	var tags []*flv.Tag
	for {
		tag, err := r.Read()
		if errors.Is(err, io.EOF) {
			return tags
		}
		if err != nil {
			t.Fatal(err)
		}
		if tag.Type != flv.TypeScript {
			tags = append(tags, tag)
		}
	}
}

// publishTags publishes live/name on node i with our own RTMP client, as a hostile
// encoder would, times as given: the tags next returns until it returns nil.
func (tg *target) publishTags(i int, name string, next func() *flv.Tag) {
	t := tg.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := rtmp.DialPublish(ctx, tg.nodes[i].RTMP, "live", name, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	batch := make([]*flv.Tag, 0, 16)
	for done := false; !done; {
		batch = batch[:0]
		for len(batch) < cap(batch) {
			tag := next()
			if tag == nil {
				done = true
				break
			}
			batch = append(batch, tag)
		}
		if _, err := c.WriteTags(batch); err != nil {
			t.Fatalf("publishing %s: %v", name, err)
		}
	}
}

// each returns a next func for publishTags over a slice.
func each(tags []*flv.Tag) func() *flv.Tag {
	return func() *flv.Tag {
		if len(tags) == 0 {
			return nil
		}
		t := tags[0]
		tags = tags[1:]
		return t
	}
}

// playlist fetches /live/name.m3u8 from node i and returns its EXT-X-TARGETDURATION.
func (tg *target) targetDuration(i int, name string) (int, string) {
	tg.t.Helper()
	cl := http.Client{Timeout: 15 * time.Second}
	var body []byte
	eventually(tg.t, 30*time.Second, "the playlist of "+name, func() bool {
		resp, err := cl.Get(tg.httpURL(i, "/live/"+name+".m3u8"))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ = io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK
	})
	m := regexp.MustCompile(`#EXT-X-TARGETDURATION:(\d+)`).FindSubmatch(body)
	if m == nil {
		tg.t.Fatalf("no TARGETDURATION in:\n%s", body)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n, string(body)
}

// TestKeyframelessInterFrames: a publisher sends one keyframe and then only large inter
// frames, 300 MB of them as fast as the node takes them. Before the segment cap the open
// HLS segment grew with every byte (600 MB sent, RSS 2.5 GB). Now the segment is cut at
// its cap and video waits for the next keyframe: RSS stays bounded and the stream's
// playlist is served.
func TestKeyframelessInterFrames(t *testing.T) {
	tg := newTarget(t, 1)
	src := sourceTags(t, 2)
	var head []*flv.Tag // sequence headers and the first keyframe
	for _, tag := range src {
		head = append(head, tag)
		if tag.IsKeyframe() {
			break
		}
	}
	// A non-IDR slice NAL unit (type 1) of 100 KB, in AVCC with a 4-byte length.
	const nalSize = 100 << 10
	body := make([]byte, 5+4+nalSize)
	copy(body, []byte{0x27, 1, 0, 0, 0})
	binary.BigEndian.PutUint32(body[5:], nalSize)
	body[9] = 0x41
	for i := 10; i < len(body); i++ {
		body[i] = byte(i*131 + 7)
	}
	t0 := head[len(head)-1].Time
	// The bound: the segment cap (31 MB, in a 32 MB buffer) and the GOP cache's byte cap
	// (16 MB) are what the stream may hold; Go's collector lets the heap grow to twice
	// what is live before it collects. Measured: +130 to +145 MiB.
	tg.attack(0, "one keyframe then 300 MB of inter frames (100 KB each)", 200, func() {
		const frames = 300 << 20 / nalSize
		headers, i := each(head), 0
		tg.publishTags(0, "nokey", func() *flv.Tag {
			if tag := headers(); tag != nil {
				return tag
			}
			if i++; i > frames {
				return nil
			}
			return flv.NewTag(flv.TypeVideo, t0+int64(i)*40, body)
		})
		if target, p := tg.targetDuration(0, "nokey"); target > 30 {
			t.Fatalf("TARGETDURATION %d:\n%s", target, p)
		}
	})
}

// TestAbsurdTimestamps: a publisher whose timestamps jump to 0x7fffffff, back to 0 and
// to just below the 32-bit wrap. Before, the playlist said TARGETDURATION:22947778 and
// the next publisher of the name inherited TARGETDURATION:2147480. Now the jumps are
// rebased for that publisher: its playlist's target stays that of its segments, and so
// does the next publisher's.
func TestAbsurdTimestamps(t *testing.T) {
	tg := newTarget(t, 1)
	src := sourceTags(t, 12)
	tg.attack(0, "timestamps jumping to 0x7fffffff, back to 0, to 0xfffffff0", 50, func() {
		var tags []*flv.Tag
		jumps := []int64{0, 0x7fffffff, -0x7fffffff, 0xfffffff0}
		for i, tag := range src {
			shift := jumps[min(i*len(jumps)/len(src), len(jumps)-1)]
			if tag.IsSequenceHeader() {
				shift = 0
			}
			tags = append(tags, flv.NewTag(tag.Type, int64(uint32(tag.Time+shift)), tag.Data())) // as the wire has it
		}
		tg.publishTags(0, "absurd", each(tags))
		if target, p := tg.targetDuration(0, "absurd"); target > 4 {
			t.Fatalf("absurd publisher's TARGETDURATION %d:\n%s", target, p)
		}
		// The next, legitimate publisher of the name, while the stream is still held.
		next, err := avtest.Publish(tg.rtmpURL(0, "live/absurd"), avtest.PublishOptions{Duration: 8 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer next.Stop()
		var p string
		eventually(t, 30*time.Second, "segments of the next publisher", func() bool {
			var target int
			target, p = tg.targetDuration(0, "absurd")
			if target > 4 {
				t.Fatalf("next publisher's TARGETDURATION %d:\n%s", target, p)
			}
			return regexp.MustCompile(`#EXT-X-DISCONTINUITY`).MatchString(p)
		})
		<-next.Done()
		if target, p := tg.targetDuration(0, "absurd"); target > 4 {
			t.Fatalf("next publisher's TARGETDURATION %d:\n%s", target, p)
		}
	})
}

// TestAudioOnlyLateJoiner: internet radio, AAC without video, from ffmpeg. A player that
// joins late, over RTMP and over HTTP-FLV, gets the sequence header and audio. Before,
// the GOP cache only reset at video keyframes: a joiner got the whole pile, overflowed
// its queue, lost the sequence header and waited for a keyframe forever. A queue of 256
// tags (about 6 s of AAC) makes the test quick: the join comes after 10 s of audio.
func TestAudioOnlyLateJoiner(t *testing.T) {
	tg := newTarget(t, 1, "--player-queue", "256")
	radio, err := avtest.Start("ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-vn", "-c:a", "aac", "-b:a", "64k",
		"-f", "flv", tg.rtmpURL(0, "live/radio"))
	if err != nil {
		t.Fatal(err)
	}
	defer radio.Stop()
	// Wait until the stream has more audio than a joiner's queue holds (by media
	// time: the node's API reports what it received).
	eventually(t, 60*time.Second, "10 s of audio received", func() bool {
		return tg.streamBytesIn(0, "live/radio") > 10*64_000/8
	})
	for _, url := range []string{tg.rtmpURL(0, "live/radio"), tg.httpURL(0, "/live/radio.flv")} {
		pkts := audioPackets(t, url)
		if tl := avtest.TimelineOf(pkts, "audio"); tl.Count < 20 || tl.Backwards > 0 {
			t.Fatalf("%s: late joiner got %+v", url, tl)
		}
		t.Logf("late joiner of an audio-only stream, %s: %d audio packets", url, len(pkts))
	}
}

// audioPackets lists the packets of the first 3 s ffprobe reads from url. The probe is
// kept short: the HTTP-FLV header still announces video (flags 0x05), and with the
// default probe size ffprobe reads 5 MB waiting for it.
func audioPackets(t *testing.T, url string) []avtest.Packet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rw_timeout", "10000000", "-probesize", "32768",
		"-analyzeduration", "1000000", "-of", "json", "-show_entries", "packet=codec_type,pts_time,dts_time,flags",
		"-read_intervals", "%+3", url)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", url, err)
	}
	var v struct{ Packets []avtest.Packet }
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	return v.Packets
}

// streamBytesIn is what node i received of stream id ("app/name"), from its API.
func (tg *target) streamBytesIn(i int, id string) int64 {
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(tg.httpURL(i, "/api/v1/streams"))
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var out struct {
		Streams []struct {
			ID        string `json:"id"`
			RecvBytes int64  `json:"recv_bytes"`
		} `json:"streams"`
	}
	if json.NewDecoder(resp.Body).Decode(&out) != nil {
		return 0
	}
	for _, st := range out.Streams {
		if st.ID == id {
			return st.RecvBytes
		}
	}
	return 0
}

// TestPublishFloodFromOneAddress: one client address opens many publishes; past
// --max-publishes-per-ip they are refused (and logged, rate-limited), its own earlier
// publishes and everyone else's keep working, and a publish that ended frees its place.
func TestPublishFloodFromOneAddress(t *testing.T) {
	tg := newTarget(t, 1, "--max-publishes-per-ip", "4") // the legit ffmpeg is one of them
	tg.attack(0, "50 publishes from one address, 4 allowed", 30, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var open []*rtmp.Client
		defer func() {
			for _, c := range open {
				c.Close()
			}
		}()
		refused := 0
		for i := range 50 {
			c, err := rtmp.DialPublish(ctx, tg.nodes[0].RTMP, "live", "flood"+strconv.Itoa(i), 10*time.Second)
			if err != nil {
				refused++
				continue
			}
			open = append(open, c)
		}
		if len(open) != 3 || refused != 47 {
			t.Fatalf("%d publishes accepted, %d refused; want 3 and 47", len(open), refused)
		}
		open[0].Close()
		open = open[1:]
		eventually(t, 10*time.Second, "a freed place taken", func() bool {
			c, err := rtmp.DialPublish(ctx, tg.nodes[0].RTMP, "live", "flood-again", 10*time.Second)
			if err != nil {
				return false
			}
			open = append(open, c)
			return true
		})
		if n := strings.Count(tg.nodes[0].Logs(), "too many from this client address"); n < 1 || n > 2 {
			t.Fatalf("%d refusal lines for 47 refusals: want one per 10 s", n)
		}
		// Refused publishes left no placement behind: the cluster lists the live ones.
		var placed int
		eventually(t, 10*time.Second, "placement of the accepted publishes only", func() bool {
			placed = tg.placedCount(0, "live/flood")
			return placed == len(open)
		})

	})
}

// placedCount is how many streams whose name starts with prefix node i's cluster view
// places.
func (tg *target) placedCount(i int, prefix string) int {
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(tg.httpURL(i, "/api/v1/cluster"))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var view struct {
		Streams []struct {
			Stream string `json:"stream"`
		} `json:"streams"`
	}
	if json.NewDecoder(resp.Body).Decode(&view) != nil {
		return -1
	}
	n := 0
	for _, st := range view.Streams {
		if strings.HasPrefix(st.Stream, prefix) {
			n++
		}
	}
	return n
}
