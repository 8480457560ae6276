package node

import (
	"context"
	"fmt"
	"time"

	"peer/ingress/console"
	"peer/membership"
	"peer/placement"
)

// eventsKept is how many recent cluster events a node keeps for the console.
const eventsKept = 200

// watchEvents feeds n.events from what membership and placement already publish:
// members joining, leaving and failing, streams placed, moved (a failover or a handoff)
// and ended, this node losing and regaining the leader; and, by polling the Raft
// leader (placement has no subscription for it), leader changes. It returns when ctx
// ends.
func (n *Node) watchEvents(ctx context.Context) {
	n.cluster.Membership().Subscribe(func(ev membership.Event) {
		if e, ok := memberEvent(ev); ok {
			n.events.Add(e)
		}
	})
	cancel := n.cluster.OnChange(func(ch placement.Change) {
		if e, ok := placementEvent(ch); ok {
			n.events.Add(e)
		}
	})
	defer cancel()
	leader := ""
	t := time.NewTicker(time.Second) // one wake-up a second: a small part of an idle node's cost
	defer t.Stop()
	for {
		if l := n.cluster.Leader(); l != leader {
			if l == "" {
				n.events.Add(console.Event{Kind: "no_leader", Node: leader, Detail: "the cluster has no Raft leader: placement is frozen"})
			} else {
				n.events.Add(console.Event{Kind: "leader", Node: l, Detail: "Raft leader is " + l})
			}
			leader = l
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// memberEvent describes a membership event; load updates are not events.
func memberEvent(ev membership.Event) (console.Event, bool) {
	m := ev.Member
	switch ev.Type {
	case membership.EventJoin:
		return console.Event{Kind: "join", Node: m.Name, Detail: m.Name + " joined (gossip " + m.Gossip + ")"}, true
	case membership.EventLeave:
		return console.Event{Kind: "leave", Node: m.Name, Detail: m.Name + " left the cluster"}, true
	case membership.EventFail:
		return console.Event{Kind: "fail", Node: m.Name, Detail: m.Name + " was declared dead"}, true
	}
	return console.Event{}, false
}

// placementEvent describes a change of the placement state that an operator cares
// about: a new stream, a new master, a stream's end, the node's contact with the leader.
func placementEvent(ch placement.Change) (console.Event, bool) {
	switch ch.Kind {
	case placement.ChangeUpdate:
		switch {
		case ch.New == nil:
		case ch.Old == nil:
			return console.Event{Kind: "stream_new", Stream: ch.Stream, Node: ch.New.Master,
				Detail: fmt.Sprintf("%s placed on %s (epoch %d)", ch.Stream, ch.New.Master, ch.New.Epoch)}, true
		case ch.Old.Master != ch.New.Master:
			return console.Event{Kind: "master", Stream: ch.Stream, Node: ch.New.Master,
				Detail: fmt.Sprintf("%s: master %s -> %s (epoch %d)", ch.Stream, ch.Old.Master, ch.New.Master, ch.New.Epoch)}, true
		}
	case placement.ChangeDelete:
		return console.Event{Kind: "stream_end", Stream: ch.Stream, Detail: ch.Stream + " ended"}, true
	case placement.ChangeContactLost:
		return console.Event{Kind: "contact_lost", Detail: "this node lost contact with the leader: degraded, it serves what it has"}, true
	case placement.ChangeContactRestore:
		return console.Event{Kind: "contact_restored", Detail: "contact with a leader is back: no longer degraded, placement wins"}, true
	}
	return console.Event{}, false
}

// clusterView is /api/v1/cluster: placement's view, and (peer's own addition, for the
// console) each member's gossiped load and version.
type clusterView struct {
	placement.View
	Loads map[string]memberLoad `json:"loads"`
	// Unplaced: streams this node masters without placement, taken while degraded and
	// not yet claimed through a leader.
	Unplaced []string `json:"unplaced,omitempty"`
}

type memberLoad struct {
	membership.Load
	Version string `json:"version"`
}

func (n *Node) clusterView() clusterView {
	v := clusterView{View: n.cluster.View(), Loads: map[string]memberLoad{}, Unplaced: n.router.UnplacedStreams()}
	for _, m := range n.cluster.Membership().Members() {
		v.Loads[m.Name] = memberLoad{Load: m.Load, Version: m.Version}
	}
	return v
}
