// Command peerload plays one live stream with many concurrent players (HTTP-FLV or RTMP)
// and reports what they received: connections, players at full rate, delivered
// throughput, time to first frame, stalls and disconnects.
//
//	peerload --url http://127.0.0.1:8080/live/test.flv -n 1000 --duration 30s --ramp 2s
//	peerload --url rtmp://127.0.0.1:1935/live/test -n 50 --duration 10s --json
//
// Only loopback hosts are accepted. Ctrl-C ends the run early and still prints the
// summary.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"peer/cmd/peerload/loadclient"
)

type cli struct {
	URL         string        `help:"Stream to play: http://HOST:PORT/APP/STREAM.flv or rtmp://HOST:PORT/APP/STREAM (loopback only)." required:""`
	Players     int           `short:"n" help:"Concurrent players." default:"100"`
	Duration    time.Duration `help:"Length of the run, ramp included." default:"30s"`
	Ramp        time.Duration `help:"Spread the player starts evenly over this time." default:"0s"`
	ReadTimeout time.Duration `help:"Silence after which a player counts as disconnected." default:"10s"`
	DialTimeout time.Duration `help:"Bound on connect plus request/play handshake." default:"10s"`
	Buffer      int           `help:"Read buffer per HTTP player, bytes." default:"32768"`
	JSON        bool          `help:"Print the summary as JSON (for cmd/peerbench)."`
}

func main() {
	var c cli
	kong.Parse(&c, kong.Name("peerload"), kong.Description("Live-stream load client: many HTTP-FLV or RTMP players on one stream."))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := loadclient.Run(ctx, loadclient.Config{
		URL: c.URL, Players: c.Players, Duration: c.Duration, Ramp: c.Ramp,
		ReadTimeout: c.ReadTimeout, DialTimeout: c.DialTimeout, BufSize: c.Buffer,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "peerload:", err)
		os.Exit(2)
	}
	s := loadclient.Summarize(res)
	if c.JSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(s)
		return
	}
	s.Print(os.Stdout)
}
