package web

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"peer/ingress/limit"
	"peer/media"
	"peer/membership"
	"peer/placement"
	"peer/placement/dataplane"
)

// metricsServer is a Server with a published stream, an RTMP and an HLS player, and
// fixed placement and link figures.
func metricsServer(t *testing.T) *Server {
	t.Helper()
	hub := media.NewHub(media.DefaultConfig(), zap.NewNop())
	pub, err := hub.Publish("live", "a", "pub", media.Origin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	pl, err := hub.Play("live", "a", media.PlayOptions{Kind: "rtmp-play", Remote: "10.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pl.Close)
	link, err := hub.Play("live", "a", media.PlayOptions{Kind: "link-forward", Remote: "node:n2", Link: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(link.Close)
	s := &Server{Hub: hub, Limit: limit.New(10), Log: zap.NewNop(), NodeName: "n1",
		Placement: func() placement.Stats {
			return placement.Stats{RaftState: "follower", LeaderKnown: false, Degraded: true, LeaderChanges: 3, PlacementChanges: 7, Failovers: 2,
				Apply:   placement.Histogram{Count: 2, Sum: 0.012, Buckets: []uint64{0, 0, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2}},
				Members: map[membership.State]int{membership.StateAlive: 2, membership.StateDead: 1}, LastIndex: 42, AppliedIndex: 41}
		},
		Links: func() []dataplane.LinkStats {
			return []dataplane.LinkStats{{Kind: dataplane.LinkRelay}, {Kind: dataplane.LinkForward, Up: 1, Connecting: 1, Connects: 4}, {Kind: dataplane.LinkPull}}
		}}
	s.init()
	s.hls.note("live/a", "10.0.0.2:5", time.Now())
	return s
}

func scrape(t *testing.T, s *Server) string {
	t.Helper()
	w := serveReq(s.handler(true, false), "GET", "/metrics")
	if w.Code != 200 {
		t.Fatalf("/metrics: %d %s", w.Code, w.Body)
	}
	return w.Body.String()
}

// TestMetricsReportClusterState: /metrics carries players per protocol, drops, links by
// kind and state, the Raft standing and log position, placement counters and members
// by state.
func TestMetricsReportClusterState(t *testing.T) {
	body := scrape(t, metricsServer(t))
	for _, line := range []string{
		`peer_players{protocol="rtmp",stream="live/a"} 1`,
		`peer_players{protocol="flv",stream="live/a"} 0`,
		`peer_players{protocol="hls",stream="live/a"} 1`,
		`peer_dropped_frames_total 0`,
		`peer_dropped_players_total 0`,
		`peer_links{kind="forward",state="up"} 1`,
		`peer_links{kind="forward",state="connecting"} 1`,
		`peer_links{kind="pull",state="up"} 0`,
		`peer_link_connects_total{kind="forward"} 4`,
		`peer_raft_state{state="follower"} 1`,
		`peer_raft_state{state="leader"} 0`,
		`peer_raft_leader_known 0`,
		`peer_degraded 1`,
		`peer_raft_leader_changes_total 3`,
		`peer_placement_changes_total 7`,
		`peer_placement_failovers_total 2`,
		`peer_raft_apply_seconds_bucket{le="0.005"} 1`,
		`peer_raft_apply_seconds_count 2`,
		`peer_members{state="alive"} 2`,
		`peer_members{state="dead"} 1`,
		`peer_members{state="left"} 0`,
		`peer_raft_last_index 42`,
		`peer_raft_applied_index 41`,
	} {
		if !strings.Contains(body, "\n"+line+"\n") {
			t.Errorf("missing %q", line)
		}
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", body)
	}
}

// TestGrafanaDashboard: docs/grafana-peer.json is valid JSON with a Prometheus
// datasource variable, and every metric its panels query is one a node exports.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile("../../docs/grafana-peer.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Templating struct {
			List []struct{ Name, Type, Query string }
		}
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	hasDatasource := false
	for _, v := range dash.Templating.List {
		hasDatasource = hasDatasource || (v.Type == "datasource" && v.Query == "prometheus")
	}
	if !hasDatasource {
		t.Error("dashboard has no Prometheus datasource variable")
	}
	body := scrape(t, metricsServer(t))
	name := regexp.MustCompile(`\b(peer|process|go)_[a-z_]+`)
	queried := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				queried++
				if !strings.Contains(body, "\n"+m+"{") && !strings.Contains(body, "\n"+m+" ") {
					t.Errorf("panel %q queries %s, which /metrics does not export", p.Title, m)
				}
			}
		}
	}
	if queried == 0 {
		t.Error("no panel queries a metric")
	}
}
