package chaos

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"peer/chaos/avtest"
	"peer/chaos/procs"
)

// scrapeMetrics reads a node's /metrics as series ("name{labels}") to value; nil when
// the node does not answer.
func scrapeMetrics(n *procs.Node) map[string]float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	body, err := httpGet(ctx, "http://"+n.HTTP+"/metrics")
	if err != nil {
		return nil
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		i := strings.LastIndexByte(line, ' ')
		if line == "" || line[0] == '#' || i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// TestMetricsShowFailover: after the SIGKILL of the master of a relayed stream, a
// surviving node's /metrics shows the failover (placement changes and failovers up,
// the dead member, a known leader, and a leader change when the master led), the
// ingress's relay link re-established, and the new master forwarding to a replica.
func TestMetricsShowFailover(t *testing.T) {
	avtest.RequireTools(t)
	c, ingress := relayingCluster(t)
	publish(t, rtmpURL(ingress, "live/metrics"))
	a := relayedAssignment(t, ingress, "live/metrics")
	var before map[string]float64
	eventually(t, 15*time.Second, "the ingress's relay link up", func() bool {
		before = scrapeMetrics(ingress)
		return before[`peer_links{kind="relay",state="up"}`] == 1 && before[`peer_members{state="alive"}`] == 3
	})
	v, err := ingress.View(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	master := c.ByName(a.Master)
	masterLed := v.Leader == master.Name
	t.Logf("before: placement changes %v, failovers %v, leader changes %v, relay connects %v (master %s, leader %s)",
		before["peer_placement_changes_total"], before["peer_placement_failovers_total"],
		before["peer_raft_leader_changes_total"], before[`peer_link_connects_total{kind="relay"}`], master.Name, v.Leader)
	master.Kill()

	newMaster := c.Others(master.Name, ingress.Name)[0]
	var after map[string]float64
	eventually(t, 30*time.Second, "the failover in the ingress's metrics", func() bool {
		after = scrapeMetrics(ingress)
		return after["peer_placement_failovers_total"] > before["peer_placement_failovers_total"] &&
			after["peer_placement_changes_total"] > before["peer_placement_changes_total"] &&
			after[`peer_members{state="dead"}`]+after[`peer_members{state="left"}`] >= 1 &&
			after["peer_raft_leader_known"] == 1 &&
			(!masterLed || after["peer_raft_leader_changes_total"] > before["peer_raft_leader_changes_total"]) &&
			after[`peer_link_connects_total{kind="relay"}`] > before[`peer_link_connects_total{kind="relay"}`] &&
			after[`peer_links{kind="relay",state="up"}`] == 1
	})
	t.Logf("after: placement changes %v, failovers %v, leader changes %v, relay connects %v, members dead %v",
		after["peer_placement_changes_total"], after["peer_placement_failovers_total"],
		after["peer_raft_leader_changes_total"], after[`peer_link_connects_total{kind="relay"}`], after[`peer_members{state="dead"}`])
	eventually(t, 30*time.Second, "the new master forwarding and counting the failover", func() bool {
		m := scrapeMetrics(newMaster)
		b, ok := assignment(newMaster, "live/metrics")
		return ok && b.Master == newMaster.Name && m[`peer_links{kind="forward",state="up"}`] >= 1 &&
			m["peer_placement_failovers_total"] >= 1 && m[`peer_raft_state{state="leader"}`]+m[`peer_raft_state{state="follower"}`] == 1
	})
}
