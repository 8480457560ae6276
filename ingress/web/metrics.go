package web

import (
	"github.com/prometheus/client_golang/prometheus"

	"peer/membership"
	"peer/placement"
)

// desc names a metric of this node; every name starts with peer_.
func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("peer_"+name, help, labels, nil)
}

// hubCollector reads the hub's counters at scrape time, so the hot path keeps no
// Prometheus state of its own. Stream labels name only the streams this node holds.
type hubCollector struct {
	s *Server

	streams, publishing, players, conns, refused, bytesIn, bytesOut, droppedTags, droppedPlayers *prometheus.Desc
}

func newHubCollector(s *Server) *hubCollector {
	return &hubCollector{s: s,
		streams:        desc("streams", "Streams held by this node."),
		publishing:     desc("streams_publishing", "Streams with a publisher attached."),
		players:        desc("players", "Players of a stream on this node, per protocol (rtmp, flv, hls; HLS viewers seen in the last minute). Cluster links are counted by peer_links.", "stream", "protocol"),
		conns:          desc("connections", "Media sessions holding a max_connections slot."),
		refused:        desc("connections_refused_total", "Media sessions refused by max_connections."),
		bytesIn:        desc("stream_bytes_in_total", "Media bytes received, per stream.", "stream"),
		bytesOut:       desc("stream_bytes_out_total", "Media bytes sent to players, per stream.", "stream"),
		droppedTags:    desc("dropped_frames_total", "Media frames (FLV tags) discarded because a player or link fell behind: its backlog and what it skipped until the next keyframe."),
		droppedPlayers: desc("dropped_players_total", "Players and links closed for staying too slow (max overflows)."),
	}
}

func (c *hubCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.streams, c.publishing, c.players, c.conns, c.refused, c.bytesIn, c.bytesOut, c.droppedTags, c.droppedPlayers} {
		ch <- d
	}
}

func (c *hubCollector) Collect(ch chan<- prometheus.Metric) {
	streams, clients := c.s.Hub.Snapshot()
	players := c.s.playersByProtocol(streams, clients)
	publishing := 0
	for _, st := range streams {
		key := st.App + "/" + st.Name
		if st.Publishing {
			publishing++
		}
		for proto, n := range players[key] {
			ch <- prometheus.MustNewConstMetric(c.players, prometheus.GaugeValue, float64(n), key, proto)
		}
		ch <- prometheus.MustNewConstMetric(c.bytesIn, prometheus.CounterValue, float64(st.BytesIn), key)
		ch <- prometheus.MustNewConstMetric(c.bytesOut, prometheus.CounterValue, float64(st.BytesOut), key)
	}
	tags, dropped := c.s.Hub.Drops()
	ch <- prometheus.MustNewConstMetric(c.streams, prometheus.GaugeValue, float64(len(streams)))
	ch <- prometheus.MustNewConstMetric(c.publishing, prometheus.GaugeValue, float64(publishing))
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(c.s.Limit.Active()))
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(c.s.Limit.Refused()))
	ch <- prometheus.MustNewConstMetric(c.droppedTags, prometheus.CounterValue, float64(tags))
	ch <- prometheus.MustNewConstMetric(c.droppedPlayers, prometheus.CounterValue, float64(dropped))
}

// clusterCollector reports the cluster links and placement, through the Server's
// Links and Placement funcs (each is skipped when unset).
type clusterCollector struct {
	s *Server

	links, linkConnects, raftState, leaderKnown, degraded, leaderChanges, changes, failovers, apply, members, lastIndex, appliedIndex *prometheus.Desc
}

// raftStates are the values peer_raft_state reports, one series each.
var raftStates = []string{"leader", "follower", "candidate", "shutdown"}

// memberStates are the values peer_members reports, one series each.
var memberStates = []string{"alive", "suspect", "dead", "left"}

func newClusterCollector(s *Server) *clusterCollector {
	return &clusterCollector{s: s,
		links:         desc("links", "Cluster links on this node by kind (relay: a publish relayed to its master; forward: master to replica; pull: edge from an origin) and state (up: carrying media; connecting: dialing, retrying or waiting for an origin).", "kind", "state"),
		linkConnects:  desc("link_connects_total", "Times a cluster link of this kind came up; a reconnect (after a failover, say) counts again.", "kind"),
		raftState:     desc("raft_state", "1 for this node's current Raft state, 0 for the others.", "state"),
		leaderKnown:   desc("raft_leader_known", "1 while this node knows a Raft leader; 0: placement cannot change, so streams whose master dies wait for an election."),
		degraded:      desc("degraded", "1 while this node is degraded: out of contact with a Raft leader for the fence timeout. It keeps serving what it has and takes new publishes locally; placement is frozen until a leader is back."),
		leaderChanges: desc("raft_leader_changes_total", "Raft leaders this node has seen elected since it started."),
		changes:       desc("placement_changes_total", "Stream assignment changes applied by this node's placement FSM (created, moved, deleted, replicas or edges changed); equal across nodes."),
		failovers:     desc("placement_failovers_total", "Applied assignment changes that gave a live stream another master (its master died, left or was drained); counted on every node from the replicated log."),
		apply:         desc("raft_apply_seconds", "Latency of this node's Raft applies (as leader) until committed and applied to its FSM."),
		members:       desc("members", "Cluster members by membership state, as this node sees them (itself included).", "state"),
		lastIndex:     desc("raft_last_index", "Index of the last entry in this node's Raft log, committed or not; its growth counts the entries placement wrote."),
		appliedIndex:  desc("raft_applied_index", "Index of the last Raft log entry this node's placement FSM applied."),
	}
}

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.links, c.linkConnects, c.raftState, c.leaderKnown, c.degraded, c.leaderChanges, c.changes, c.failovers, c.apply, c.members, c.lastIndex, c.appliedIndex} {
		ch <- d
	}
}

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	if c.s.Links != nil {
		for _, l := range c.s.Links() {
			ch <- prometheus.MustNewConstMetric(c.links, prometheus.GaugeValue, float64(l.Up), l.Kind, "up")
			ch <- prometheus.MustNewConstMetric(c.links, prometheus.GaugeValue, float64(l.Connecting), l.Kind, "connecting")
			ch <- prometheus.MustNewConstMetric(c.linkConnects, prometheus.CounterValue, float64(l.Connects), l.Kind)
		}
	}
	if c.s.Placement == nil {
		return
	}
	st := c.s.Placement()
	for _, state := range raftStates {
		ch <- prometheus.MustNewConstMetric(c.raftState, prometheus.GaugeValue, boolValue(st.RaftState == state), state)
	}
	ch <- prometheus.MustNewConstMetric(c.leaderKnown, prometheus.GaugeValue, boolValue(st.LeaderKnown))
	ch <- prometheus.MustNewConstMetric(c.degraded, prometheus.GaugeValue, boolValue(st.Degraded))
	ch <- prometheus.MustNewConstMetric(c.leaderChanges, prometheus.CounterValue, float64(st.LeaderChanges))
	ch <- prometheus.MustNewConstMetric(c.changes, prometheus.CounterValue, float64(st.PlacementChanges))
	ch <- prometheus.MustNewConstMetric(c.failovers, prometheus.CounterValue, float64(st.Failovers))
	ch <- prometheus.MustNewConstMetric(c.lastIndex, prometheus.GaugeValue, float64(st.LastIndex))
	ch <- prometheus.MustNewConstMetric(c.appliedIndex, prometheus.GaugeValue, float64(st.AppliedIndex))
	buckets := make(map[float64]uint64, len(placement.ApplyBuckets))
	for i, b := range placement.ApplyBuckets {
		buckets[b] = st.Apply.Buckets[i]
	}
	ch <- prometheus.MustNewConstHistogram(c.apply, st.Apply.Count, st.Apply.Sum, buckets)
	for _, state := range memberStates {
		ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(st.Members[membership.State(state)]), state)
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// budgetCollector reports the budgets that keep operators in control under load.
type budgetCollector struct {
	s                      *Server
	apiRefused, idleClosed *prometheus.Desc
}

func newBudgetCollector(s *Server) *budgetCollector {
	return &budgetCollector{s: s,
		apiRefused: prometheus.NewDesc("peer_api_requests_refused_total", "API requests refused by the API's concurrency budget.", nil, nil),
		idleClosed: prometheus.NewDesc("peer_http_idle_closed_total", "Idle HTTP connections closed to make room (--max-http-idle), per listener.", []string{"listener"}, nil),
	}
}

func (c *budgetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.apiRefused
	ch <- c.idleClosed
}

func (c *budgetCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.apiRefused, prometheus.CounterValue, float64(c.s.api.Refused()))
	for i, name := range listenerNames {
		ch <- prometheus.MustNewConstMetric(c.idleClosed, prometheus.CounterValue, float64(c.s.idle[i].Evicted()), name)
	}
}
