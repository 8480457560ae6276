package main

import (
	"testing"

	"peer/media/mpegts"
)

// TestDefaultAVCCParses: the fallback sequence header is a valid avcC (SPS and PPS
// lengths right), so the HLS muxer accepts a synthetic stream published without a clip.
func TestDefaultAVCCParses(t *testing.T) {
	c, err := mpegts.ParseAVCC(defaultAVCC[5:])
	if err != nil {
		t.Fatalf("defaultAVCC: %v", err)
	}
	if c.Width != 640 || c.Height != 360 {
		t.Fatalf("defaultAVCC is %dx%d, want 640x360", c.Width, c.Height)
	}
}
