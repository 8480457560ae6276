package ingest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"go.uber.org/zap"

	"peer/media"
	"peer/media/flv"
)

// TestPumpFLV feeds a publisher from an FLV byte stream through the FLV adapter: a
// player of the stream gets the tags (times past the 2^32 ms wrap included), a tag type
// that is not media is skipped, and Pump ends with the reader's error.
func TestPumpFLV(t *testing.T) {
	avcSeq := []byte{0x17, 0, 0, 0, 0, 1, 0x42, 0, 0x1e, 0xff, 0xe0, 0}
	keyframe := []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65}
	base := int64(1<<32 - 20)
	in := flv.AppendFileHeader(nil, flv.FlagsVideo)
	for _, tag := range []*flv.Tag{
		flv.NewTag(flv.TypeVideo, base, avcSeq),
		flv.NewTag(flv.TypeVideo, base, keyframe),
		flv.NewTag(7, base+10, []byte{1, 2, 3}), // not media
		flv.NewTag(flv.TypeVideo, base+40, keyframe),
	} {
		in = append(in, tag.Raw...)
	}

	hub := media.NewHub(media.DefaultConfig(), zap.NewNop())
	pub, err := hub.Publish("live", "x", "test", media.Origin)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	player, err := hub.Play("live", "x", media.PlayOptions{Kind: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer player.Close()
	if err := Pump(NewFLV(bytes.NewReader(in)), pub); !errors.Is(err, io.EOF) {
		t.Fatalf("Pump ended with %v, want EOF", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got []*flv.Tag
	for len(got) < 3 {
		batch, err := player.Next(ctx, nil)
		if err != nil {
			t.Fatalf("after %d tags: %v", len(got), err)
		}
		got = append(got, batch...)
	}
	if len(got) != 3 || !got[0].IsSequenceHeader() || !got[1].IsKeyframe() || !got[2].IsKeyframe() {
		t.Fatalf("player got %d tags: %v", len(got), got)
	}
	if d := got[2].Time - got[1].Time; d != 40 {
		t.Fatalf("keyframes %d ms apart across the wrap, want 40", d)
	}
}
