package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"peer/media"
)

// writeJSON answers with v. Read-only routes add CORS (withCORS), admin actions do not.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	json.NewEncoder(w).Encode(v)
}

func (s *Server) versions(w http.ResponseWriter, r *http.Request) {
	major, minor, revision := splitVersion(s.Version)
	writeJSON(w, map[string]any{"code": 0, "server": s.NodeName, "data": map[string]any{
		"major": major, "minor": minor, "revision": revision, "version": s.Version}})
}

func splitVersion(v string) (int, int, int) {
	var out [3]int
	for i, p := range strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3) {
		out[i], _ = strconv.Atoi(strings.TrimFunc(p, func(r rune) bool { return r < '0' || r > '9' }))
	}
	return out[0], out[1], out[2]
}

func (s *Server) summaries(w http.ResponseWriter, r *http.Request) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	streams, clients := s.Hub.Snapshot()
	var kbpsIn, kbpsOut float64
	for _, st := range streams {
		kbpsIn += st.KbpsIn
		kbpsOut += st.KbpsOut
	}
	writeJSON(w, map[string]any{"code": 0, "server": s.NodeName, "data": map[string]any{
		"ok": true, "now_ms": time.Now().UnixMilli(),
		"self": map[string]any{
			"version": s.Version, "pid": os.Getpid(), "mem_kbyte": ms.Sys / 1024,
			"srs_uptime": int64(time.Since(s.started).Seconds()), "goroutines": runtime.NumGoroutine(),
		},
		"system": map[string]any{
			"cpus": runtime.NumCPU(), "conn_srs": s.Limit.Active(), "streams": len(streams), "clients": len(clients),
			"net_recv_kbps": kbpsIn, "net_send_kbps": kbpsOut,
		},
	}})
}

// streamJSON follows SRS's /api/v1/streams fields; "players" (peer's own) counts this
// node's players of the stream per protocol.
func streamJSON(st media.StreamStats, players map[string]int) map[string]any {
	id := st.App + "/" + st.Name
	out := map[string]any{
		"id": id, "name": st.Name, "vhost": "__defaultVhost__", "app": st.App,
		"url": "/" + id, "live_ms": st.Created.UnixMilli(), "clients": st.Players, "frames": st.Frames,
		"send_bytes": st.BytesOut, "recv_bytes": st.BytesIn,
		"kbps":    map[string]any{"recv_30s": st.KbpsIn, "send_30s": st.KbpsOut},
		"publish": map[string]any{"active": st.Publishing, "cid": st.PublisherID},
		"players": players,
	}
	if st.Info.VideoCodec != "" {
		out["video"] = map[string]any{"codec": st.Info.VideoCodec, "profile": st.Info.Profile, "level": st.Info.Level,
			"width": st.Info.Width, "height": st.Info.Height, "fps": st.Info.FPS}
	}
	if st.Info.AudioCodec != "" {
		out["audio"] = map[string]any{"codec": st.Info.AudioCodec, "sample_rate": st.Info.SampleRate, "channel": st.Info.Channels}
	}
	return out
}

// playerProtocols names the protocol of each user player kind; the cluster's own
// links (link-forward, link-pull, link-relay) are not players.
var playerProtocols = map[string]string{"rtmp-play": "rtmp", "flv-play": "flv"}

// playersByProtocol counts each stream's players per protocol (rtmp, flv, hls), from
// the hub's snapshot and the HLS viewers seen lately.
func (s *Server) playersByProtocol(streams []media.StreamStats, clients []media.ClientStats) map[string]map[string]int {
	hls := s.hls.counts(time.Now())
	players := map[string]map[string]int{}
	for _, st := range streams {
		key := st.App + "/" + st.Name
		players[key] = map[string]int{"rtmp": 0, "flv": 0, "hls": hls[key]}
	}
	for _, c := range clients {
		if proto, ok := playerProtocols[c.Kind]; ok && players[c.App+"/"+c.Stream] != nil {
			players[c.App+"/"+c.Stream][proto]++
		}
	}
	return players
}

func (s *Server) streams(w http.ResponseWriter, r *http.Request) {
	streams, clients := s.Hub.Snapshot()
	players := s.playersByProtocol(streams, clients)
	list := make([]map[string]any, 0, len(streams))
	for _, st := range streams {
		list = append(list, streamJSON(st, players[st.App+"/"+st.Name]))
	}
	writeJSON(w, map[string]any{"code": 0, "server": s.NodeName, "streams": list})
}

func (s *Server) clients(w http.ResponseWriter, r *http.Request) {
	_, clients := s.Hub.Snapshot()
	list := make([]map[string]any, 0, len(clients))
	for _, c := range clients {
		list = append(list, map[string]any{"id": c.ID, "vhost": "__defaultVhost__", "app": c.App,
			"stream": c.App + "/" + c.Stream, "ip": c.Remote, "type": c.Kind, "publish": c.Publish, "send_bytes": c.BytesOut})
	}
	writeJSON(w, map[string]any{"code": 0, "server": s.NodeName, "clients": list})
}

func (s *Server) cluster(w http.ResponseWriter, r *http.Request) {
	if s.Cluster == nil {
		writeJSON(w, map[string]any{"code": 0, "self": s.NodeName, "leader": s.NodeName, "members": []any{}, "streams": []any{}})
		return
	}
	body, err := withCode(s.Cluster())
	if err != nil {
		writeJSON(w, map[string]any{"code": 1, "error": err.Error()})
		return
	}
	writeJSON(w, body)
}

// withCode puts the API envelope's "code": 0 in front of the fields of v, a value that
// marshals to a JSON object (the cluster view carries no envelope of its own).
func withCode(v any) (json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if len(b) < 2 || b[0] != '{' {
		return nil, fmt.Errorf("web: the cluster view is not a JSON object: %.40s", b)
	}
	out := append([]byte(`{"code":0`), b[1:]...)
	if len(b) > 2 {
		out = append([]byte(`{"code":0,`), b[1:]...)
	}
	return out, nil
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	var list any = []any{}
	if s.Events != nil {
		list = s.Events()
	}
	writeJSON(w, map[string]any{"code": 0, "server": s.NodeName, "events": list})
}

func (s *Server) leave(w http.ResponseWriter, r *http.Request) {
	if s.Leave == nil {
		http.Error(w, "not clustered", http.StatusNotFound)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	if err := s.Leave(ctx); err != nil {
		writeJSON(w, map[string]any{"code": 1, "error": err.Error()})
		return
	}
	writeJSON(w, map[string]any{"code": 0, "left": s.NodeName})
}
