package loadclient

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"time"
)

// Summary aggregates a Result; it is also peerload's --json output, which cmd/peerbench
// reads back.
type Summary struct {
	URL         string  `json:"url"`
	Requested   int     `json:"players_requested"`
	Started     int     `json:"players_started"`
	Connected   int     `json:"players_connected"`
	WithVideo   int     `json:"players_with_video"`
	FullRate    int     `json:"players_full_rate"`
	Disconnects int     `json:"disconnects"`
	Backwards   int     `json:"players_ts_backwards"`
	Skipped     int     `json:"players_skipped_ahead"`
	WallSec     float64 `json:"wall_seconds"`
	Bytes       int64   `json:"bytes"`
	Tags        int64   `json:"tags"`
	VideoFrames int64   `json:"video_frames"`
	Mbps        float64 `json:"delivered_mbps"`
	// MediaCoverage is the median, over players with video, of media time received
	// divided by wall time since their first frame (1.0 = real time).
	MediaCoverageP50 float64 `json:"media_coverage_p50"`
	MediaCoverageMin float64 `json:"media_coverage_min"`
	TTFBp50Ms        float64 `json:"ttfb_p50_ms"`
	TTFBp99Ms        float64 `json:"ttfb_p99_ms"`
	TTFFp50Ms        float64 `json:"ttff_p50_ms"`
	TTFFp99Ms        float64 `json:"ttff_p99_ms"`
	TTFFMaxMs        float64 `json:"ttff_max_ms"`
	MaxGapP50Ms      float64 `json:"max_gap_p50_ms"`
	MaxGapP99Ms      float64 `json:"max_gap_p99_ms"`
	// Errors counts failure reasons of players that never connected or disconnected.
	Errors map[string]int `json:"errors,omitempty"`
}

// Summarize aggregates r.
func Summarize(r *Result) Summary {
	s := Summary{URL: r.Config.URL, Requested: r.Config.Players, Started: len(r.Players)}
	wall := r.End.Sub(r.Start)
	s.WallSec = wall.Seconds()
	var ttfb, ttff, gaps, cover []float64
	for i := range r.Players {
		p := &r.Players[i]
		s.Bytes += p.Bytes
		s.Tags += p.Tags
		s.VideoFrames += p.VideoFrames
		if p.Connected {
			s.Connected++
		}
		if p.TTFB > 0 {
			ttfb = append(ttfb, ms(p.TTFB))
		}
		if p.TTFF > 0 {
			s.WithVideo++
			ttff = append(ttff, ms(p.TTFF))
			gaps = append(gaps, ms(p.MaxGap))
			if w := p.WallSinceFirstFrame(r.End); w > 0 {
				cover = append(cover, float64(p.LastTS-p.FirstTS)/ms(w))
			}
		}
		if p.FullRate(r.End) {
			s.FullRate++
		}
		if p.Disconnected {
			s.Disconnects++
		}
		if p.Backwards {
			s.Backwards++
		}
		if p.Skips > 0 {
			s.Skipped++
		}
		if p.Err != "" {
			if s.Errors == nil {
				s.Errors = map[string]int{}
			}
			s.Errors[p.Err]++
		}
	}
	if wall > 0 {
		s.Mbps = float64(s.Bytes) * 8 / wall.Seconds() / 1e6
	}
	s.TTFBp50Ms, s.TTFBp99Ms = pct(ttfb, 50), pct(ttfb, 99)
	s.TTFFp50Ms, s.TTFFp99Ms, s.TTFFMaxMs = pct(ttff, 50), pct(ttff, 99), pct(ttff, 100)
	s.MaxGapP50Ms, s.MaxGapP99Ms = pct(gaps, 50), pct(gaps, 99)
	s.MediaCoverageP50 = pct(cover, 50)
	if len(cover) > 0 {
		s.MediaCoverageMin = slices.Min(cover)
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pct is the nearest-rank percentile of v (sorted in place); 0 when v is empty.
func pct(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	sort.Float64s(v)
	i := int(math.Ceil(p/100*float64(len(v)))) - 1
	return v[max(0, min(i, len(v)-1))]
}

// Percentile is pct for callers outside the package.
func Percentile(v []float64, p float64) float64 { return pct(slices.Clone(v), p) }

// Print writes s for people.
func (s Summary) Print(w io.Writer) {
	fmt.Fprintf(w, "url            %s\n", s.URL)
	fmt.Fprintf(w, "players        %d requested, %d started, %d connected, %d got video\n", s.Requested, s.Started, s.Connected, s.WithVideo)
	fmt.Fprintf(w, "full rate      %d of %d (media time >= 90%% of wall time since first frame; coverage p50 %.3f, min %.3f)\n",
		s.FullRate, s.Requested, s.MediaCoverageP50, s.MediaCoverageMin)
	fmt.Fprintf(w, "delivered      %.1f Mbit/s total over %.1f s (%.0f MB, %d tags, %d video frames)\n",
		s.Mbps, s.WallSec, float64(s.Bytes)/1e6, s.Tags, s.VideoFrames)
	fmt.Fprintf(w, "TTFB           p50 %.1f ms  p99 %.1f ms\n", s.TTFBp50Ms, s.TTFBp99Ms)
	fmt.Fprintf(w, "TTFF           p50 %.1f ms  p99 %.1f ms  max %.1f ms\n", s.TTFFp50Ms, s.TTFFp99Ms, s.TTFFMaxMs)
	fmt.Fprintf(w, "max gap        p50 %.1f ms  p99 %.1f ms\n", s.MaxGapP50Ms, s.MaxGapP99Ms)
	fmt.Fprintf(w, "disconnects    %d\n", s.Disconnects)
	fmt.Fprintf(w, "ts backwards   %d players; skipped ahead (>1 s jump): %d players\n", s.Backwards, s.Skipped)
	if len(s.Errors) > 0 {
		keys := make([]string, 0, len(s.Errors))
		for k := range s.Errors {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return s.Errors[keys[i]] > s.Errors[keys[j]] })
		for _, k := range keys {
			fmt.Fprintf(w, "error          %5d × %s\n", s.Errors[k], k)
		}
	}
}
