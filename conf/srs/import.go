package srs

import (
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"strings"
	"time"
)

// Result is an imported config: the peer settings in the order SRS had them, and what the
// import has to tell about the lines it did not carry over one to one.
type Result struct {
	Settings []Setting
	Notes    []Note // done differently by peer, or by the cluster itself
	Warnings []Note // not understood or not supported: dropped
}

// Setting is one peer config key with the SRS line it came from.
type Setting struct {
	Key, Value string
	Line       int
	Comment    string
}

// Import reads an SRS config and maps it to peer settings.
func Import(r io.Reader) (*Result, error) {
	dirs, notes, err := Parse(r)
	if err != nil {
		return nil, err
	}
	im := &importer{res: &Result{Notes: notes}}
	im.top(dirs)
	return im.res, nil
}

type importer struct{ res *Result }

func (im *importer) set(d *Directive, key, value, comment string) {
	im.res.Settings = append(im.res.Settings, Setting{Key: key, Value: value, Line: d.Line, Comment: comment})
}

func (im *importer) note(d *Directive, format string, a ...any) {
	im.res.Notes = append(im.res.Notes, Note{d.Line, fmt.Sprintf(d.Name+": "+format, a...)})
}

func (im *importer) warn(d *Directive, format string, a ...any) {
	im.res.Warnings = append(im.res.Warnings, Note{d.Line, fmt.Sprintf(d.Name+": "+format, a...)})
}

func (im *importer) unknown(d *Directive) { im.warn(d, "not known to the import: dropped") }

func (im *importer) top(dirs []*Directive) {
	var logTank string
	for _, d := range dirs {
		switch d.Name {
		case "listen":
			if addr, ok := im.address(d); ok {
				im.set(d, "rtmp", addr, "SRS listen")
			}
		case "max_connections":
			if n, err := strconv.Atoi(d.Arg(0)); err == nil && n > 0 {
				im.set(d, "max-connections", d.Arg(0), "")
			} else {
				im.warn(d, "%q is not a connection count: dropped", d.Arg(0))
			}
		case "pid":
			im.note(d, "peer writes no pid file (run it under systemd: conf/peer.service)")
		case "daemon":
			im.note(d, "peer runs in the foreground; run it under systemd (conf/peer.service)")
		case "srs_log_tank":
			logTank = d.Arg(0)
			if logTank == "console" {
				im.note(d, "peer logs to stderr unless log-file is set")
			}
		case "srs_log_file":
			if logTank == "console" {
				im.note(d, "ignored: srs_log_tank is console")
				continue
			}
			im.set(d, "log-file", d.Arg(0), "SRS srs_log_file")
		case "srs_log_level":
			im.logLevel(d)
		case "http_api":
			im.server(d, "api", "SRS http_api: the API and /metrics")
		case "http_server":
			im.server(d, "http", "SRS http_server: HTTP-FLV, HLS, API, console")
		case "stats":
			im.note(d, "peer reports statistics in /api/v1/summaries and /metrics")
		case "vhost":
			im.vhost(d)
		case "heartbeat":
			im.note(d, "nodes report to each other through gossip; /metrics is for monitoring")
		default:
			im.unknown(d)
		}
	}
}

// address turns an SRS listen value (port, or ip:port; several allowed) into host:port.
func (im *importer) address(d *Directive) (string, bool) {
	if len(d.Args) == 0 {
		im.warn(d, "no address: dropped")
		return "", false
	}
	if len(d.Args) > 1 {
		im.warn(d, "peer listens on one address per protocol: only %s is kept", d.Args[0])
	}
	a := d.Args[0]
	if _, err := strconv.Atoi(a); err == nil {
		return "0.0.0.0:" + a, true
	}
	if _, _, err := net.SplitHostPort(a); err == nil {
		return a, true
	}
	im.warn(d, "%q is not a port or host:port: dropped", a)
	return "", false
}

func (im *importer) logLevel(d *Directive) {
	levels := map[string]string{"verbose": "debug", "info": "info", "trace": "info", "warn": "warn", "error": "error"}
	if l, ok := levels[d.Arg(0)]; ok {
		im.set(d, "log-level", l, "SRS srs_log_level "+d.Arg(0))
		return
	}
	im.warn(d, "unknown level %q: dropped", d.Arg(0))
}

// server maps an http_api / http_server block.
func (im *importer) server(d *Directive, key, comment string) {
	enabled := true
	var listen *Directive
	for _, c := range d.Children {
		switch c.Name {
		case "enabled":
			enabled = c.Arg(0) == "on"
		case "listen":
			listen = c
		case "dir":
			im.note(c, "peer serves no static files; its console is built in at /console/")
		case "crossdomain":
			im.note(c, "player responses always carry Access-Control-Allow-Origin: *")
		default:
			im.unknown(c)
		}
	}
	if !enabled {
		im.note(d, "disabled in SRS; peer always serves it")
	}
	if listen != nil {
		if addr, ok := im.address(listen); ok {
			im.set(listen, key, addr, comment)
		}
	}
}

func (im *importer) vhost(d *Directive) {
	if name := d.Arg(0); name != "__defaultVhost__" {
		im.warn(d, "peer has no vhosts: the settings of %q apply to every stream", name)
	}
	for _, c := range d.Children {
		switch c.Name {
		case "forward":
			im.note(c, "done by the cluster: each stream's master forwards to its replicas (replicas, default 2), chosen and re-chosen by placement")
		case "mode":
			im.note(c, "done by the cluster: every node pulls a stream it has players for (an edge) from its master or a replica")
		case "origin":
			im.note(c, "done by the cluster: origins are found through placement, not listed")
		case "cluster":
			im.note(c, "done by the cluster: origin clustering is placement's job")
		case "http_remux":
			im.remux(c)
		case "hls":
			im.hls(c)
		case "play":
			im.play(c)
		case "http_hooks":
			im.hooks(c)
		case "min_latency", "tcp_nodelay":
			im.note(c, "peer writes every frame at once with TCP_NODELAY unless merge-write is set")
		case "enabled":
			if c.Arg(0) == "off" {
				im.warn(c, "a disabled vhost has no peer equivalent: its settings are imported anyway")
			}
		default:
			im.unknown(c)
		}
	}
}

func (im *importer) remux(d *Directive) {
	for _, c := range d.Children {
		switch c.Name {
		case "enabled":
			if c.Arg(0) == "off" {
				im.note(c, "peer always serves HTTP-FLV")
			}
		case "mount":
			if m := c.Arg(0); m != "[vhost]/[app]/[stream].flv" && m != "/[app]/[stream].flv" {
				im.warn(c, "peer serves HTTP-FLV at /[app]/[stream].flv only, not %s", m)
			} else {
				im.note(c, "peer serves HTTP-FLV at http://HOST:8080/[app]/[stream].flv")
			}
		case "hstrs":
			im.note(c, "peer answers an HTTP-FLV player at once and pulls the stream from the cluster")
		case "fast_cache":
			im.note(c, "peer starts players from its GOP cache")
		default:
			im.unknown(c)
		}
	}
}

func (im *importer) hls(d *Directive) {
	enabled := true
	var fragment float64
	var window *Directive
	for _, c := range d.Children {
		switch c.Name {
		case "enabled":
			enabled = c.Arg(0) == "on"
		case "hls_fragment":
			f, err := strconv.ParseFloat(c.Arg(0), 64)
			if err != nil || f <= 0 || f > 3600 {
				im.warn(c, "%q is not a duration in seconds: dropped", c.Arg(0))
				continue
			}
			fragment = f
			im.set(c, "hls-fragment", (time.Duration(f * float64(time.Second))).String(), "SRS hls_fragment (seconds)")
		case "hls_window":
			window = c
		case "hls_path":
			im.note(c, "peer serves HLS from memory on every node; set hls-dir: %s to also write the files", c.Arg(0))
		case "hls_m3u8_file", "hls_ts_file":
			im.note(c, "peer's HLS URLs are /[app]/[stream].m3u8 and segments under the same path")
		case "hls_cleanup", "hls_dispose":
			im.note(c, "peer keeps only the live window in memory")
		default:
			im.unknown(c)
		}
	}
	if window != nil {
		// SRS's hls_window is the playlist's length in seconds; peer's is a count of segments.
		w, err := strconv.ParseFloat(window.Arg(0), 64)
		if err != nil || w <= 0 || w > 86400 {
			im.warn(window, "%q is not a duration in seconds: dropped", window.Arg(0))
		} else {
			if fragment == 0 {
				fragment = 10 // SRS's default hls_fragment
			}
			n := int(math.Ceil(w / fragment))
			im.set(window, "hls-window", strconv.Itoa(n), fmt.Sprintf("SRS hls_window %ss / hls_fragment %gs, in segments", window.Arg(0), fragment))
		}
	}
	if !enabled {
		im.note(d, "disabled in SRS; peer serves HLS for every stream (packaged on demand)")
	}
}

func (im *importer) play(d *Directive) {
	for _, c := range d.Children {
		switch c.Name {
		case "mw_latency":
			ms, err := strconv.Atoi(c.Arg(0))
			if err != nil || ms < 0 || ms > 10000 {
				im.warn(c, "%q is not milliseconds: dropped", c.Arg(0))
				continue
			}
			im.set(c, "merge-write", (time.Duration(ms) * time.Millisecond).String(), "SRS mw_latency")
		case "gop_cache":
			if c.Arg(0) == "off" {
				im.warn(c, "peer always keeps a GOP cache (players start at a keyframe): dropped")
			}
		case "queue_length":
			im.note(c, "peer bounds a player's queue in tags (player-queue, default 1024), not seconds")
		case "time_jitter", "mix_correct", "atc", "atc_auto":
			im.note(c, "peer keeps each stream's timeline continuous itself")
		default:
			im.unknown(c)
		}
	}
}

// hooks maps an http_hooks block to the node-wide hook lists (on_publish -> on-publish),
// which take the same URLs and send SRS's bodies. A disabled block is not imported.
func (im *importer) hooks(d *Directive) {
	enabled := true
	var lists []*Directive
	for _, c := range d.Children {
		switch c.Name {
		case "enabled":
			enabled = c.Arg(0) == "on"
		case "on_connect", "on_publish", "on_unpublish", "on_play", "on_stop", "on_hls":
			lists = append(lists, c)
		case "on_close", "on_dvr", "on_hls_notify", "on_forward":
			im.warn(c, "peer has no %s hook: dropped", c.Name)
		default:
			im.unknown(c)
		}
	}
	if !enabled {
		if len(lists) > 0 {
			im.note(d, "disabled in SRS: its hooks are not imported")
		}
		return
	}
	for _, c := range lists {
		switch {
		case len(c.Args) == 0:
			im.warn(c, "no URL: dropped")
		case strings.Contains(strings.Join(c.Args, ""), ","):
			im.warn(c, "a URL with ',' cannot be listed in a peer setting: dropped")
		default:
			im.set(c, strings.ReplaceAll(c.Name, "_", "-"), strings.Join(c.Args, ","), "SRS http_hooks "+c.Name)
		}
	}
}

// YAML renders the result as a peer config file with comments.
func (res *Result) YAML(source string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# peer config imported from %s by `peer conf import`.\n", source)
	b.WriteString("# Check it with `peer conf check FILE`; flags and PEER_* variables override it.\n")
	for _, n := range res.Notes {
		fmt.Fprintf(&b, "# %s:%d: %s\n", source, n.Line, n.Msg)
	}
	for _, n := range res.Warnings {
		fmt.Fprintf(&b, "# %s:%d: warning: %s\n", source, n.Line, n.Msg)
	}
	last := map[string]int{} // SRS's last value wins; earlier ones stay as comments
	for i, s := range res.Settings {
		last[s.Key] = i
	}
	for i, s := range res.Settings {
		if last[s.Key] != i {
			b.WriteString("# (replaced below) ")
		}
		fmt.Fprintf(&b, "%s: %q", s.Key, s.Value)
		if s.Comment != "" {
			fmt.Fprintf(&b, " # %s:%d %s", source, s.Line, s.Comment)
		} else {
			fmt.Fprintf(&b, " # %s:%d", source, s.Line)
		}
		b.WriteString("\n")
	}
	return b.String()
}
