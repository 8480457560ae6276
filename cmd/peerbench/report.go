package main

import (
	"fmt"
	"io"
	"strings"

	"peer/cmd/peerload/loadclient"
)

func printReport(w io.Writer, rep *report, clip clipInfo) {
	fmt.Fprintf(w, "\npeer fan-out benchmark: one node, one %.2f Mbit/s stream (%.0f A/V tags/s), HTTP-FLV players\n",
		clip.mbps, clip.tagsPerS)
	fmt.Fprintf(w, "loopback TCP ceiling (Go, 64 KiB writes): %.1f Gbit/s;  baseline server RSS (0 players): %.0f KiB\n\n",
		rep.TCPGbps, rep.BaselineRSSKiB)
	hdr := []string{"players", "conn", "full-rate", "Mbit/s", "%TCP", "srv CPU%", "CPU s/pl-min", "(whole step)",
		"RSS KiB/pl med/max", "allocs/msg", "TTFF p50/p99 ms", "gap p99 ms", "disc", "client CPU s"}
	rows := [][]string{hdr}
	for _, s := range rep.Steps {
		allocs := "n/a"
		if s.AllocsPerMsg >= 0 {
			allocs = fmt.Sprintf("%.3f", s.AllocsPerMsg)
		}
		rows = append(rows, []string{
			fmt.Sprint(s.Players),
			fmt.Sprint(s.Load.Connected),
			fmt.Sprint(s.Load.FullRate),
			fmt.Sprintf("%.0f", s.Load.Mbps),
			fmt.Sprintf("%.1f%%", 100*s.TCPFraction),
			fmt.Sprintf("%.0f%%", s.ServerCPUPct),
			fmt.Sprintf("%.4f", s.CPUPerPlayerMin),
			fmt.Sprintf("%.4f", s.CPUPerPlayerAll),
			fmt.Sprintf("%.1f/%.1f", s.RSSPerPlayerKiB, s.RSSMaxPerPlayerKiB),
			allocs,
			fmt.Sprintf("%.0f/%.0f", s.Load.TTFFp50Ms, s.Load.TTFFp99Ms),
			fmt.Sprintf("%.0f", s.Load.MaxGapP99Ms),
			fmt.Sprint(s.Load.Disconnects),
			fmt.Sprintf("%.1f", s.ClientCPUSec),
		})
	}
	printTable(w, rows)
	for _, s := range rep.Steps {
		if s.Note != "" || len(s.Load.Errors) > 0 || s.Load.Backwards > 0 || s.Load.Skipped > 0 {
			fmt.Fprintf(w, "  %d players: %s errors=%v ts-backwards=%d skipped-ahead=%d\n", s.Players, s.Note, s.Load.Errors, s.Load.Backwards, s.Load.Skipped)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "  full-rate: media time received >= 90% of wall time since the player's first frame.")
	fmt.Fprintln(w, "  srv CPU%, CPU s/pl-min, allocs/msg: steady window (ramp end + 2 s to step end - 1 s); (whole step): connects included.")
	fmt.Fprintln(w, "  RSS KiB/pl: (VmRSS - baseline) / connected players; median and max of 1 s samples in the steady window.")
	fmt.Fprintln(w, "  allocs/msg: delta go_memstats_mallocs_total / (connected players x clip tag rate x window): approximate,")
	fmt.Fprintln(w, "  includes the publisher's ingest and /metrics scrapes.")
	fmt.Fprintln(w)
	ttff := func(name string, v []float64, failed int) {
		if len(v) == 0 {
			fmt.Fprintf(w, "TTFF %-9s no successful connects (%d failed)\n", name, failed)
			return
		}
		fmt.Fprintf(w, "TTFF %-9s %d sequential connects: p50 %.1f ms  p99 %.1f ms  (%d failed)\n", name, len(v),
			loadclient.Percentile(v, 50), loadclient.Percentile(v, 99), failed)
	}
	ttff("RTMP", rep.TTFFRTMP, rep.TTFFRTMPFailed)
	ttff("HTTP-FLV", rep.TTFFHTTP, rep.TTFFHTTPFailed)
	if !rep.PublisherAlive {
		fmt.Fprintln(w, "WARNING: the ffmpeg publisher was not running at the end; results are suspect.")
	}

	// Goal: 1000 players at full rate with under 64 KiB of server RSS each.
	var goal *stepResult
	for i := range rep.Steps {
		if rep.Steps[i].Players == 1000 {
			goal = &rep.Steps[i]
		}
	}
	if goal == nil && len(rep.Steps) > 0 {
		goal = &rep.Steps[len(rep.Steps)-1]
		fmt.Fprintf(w, "(no 1000-player step; goal checked on the %d-player step)\n", goal.Players)
	}
	if goal != nil {
		rep.GoalPlayers = goal.Players
		rep.GoalFullRate = goal.Load.FullRate == goal.Players
		rep.GoalRSS = goal.RSSPerPlayerKiB < 64
		fmt.Fprintf(w, "GOAL %s: %d/%d players at full rate (%s), RSS %.1f KiB/player median (< 64 KiB: %s)\n",
			passFail(rep.GoalFullRate && rep.GoalRSS), goal.Load.FullRate, goal.Players, passFail(rep.GoalFullRate),
			goal.RSSPerPlayerKiB, passFail(rep.GoalRSS))
	}
	fmt.Fprintf(w, "(run took %.0f s)\n", rep.TotalRunSeconds)
}

func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func printTable(w io.Writer, rows [][]string) {
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len(c))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		for i, c := range r {
			if i > 0 {
				b.WriteString("  ")
			}
			fmt.Fprintf(&b, "%*s", width[i], c)
		}
		fmt.Fprintln(w, b.String())
	}
}
