package node

import (
	"testing"

	"peer/membership"
	"peer/placement"
)

func TestEventsFromMembershipAndPlacement(t *testing.T) {
	m := membership.Member{Name: "n2", Gossip: "127.0.0.1:7946"}
	for typ, kind := range map[membership.EventType]string{membership.EventJoin: "join", membership.EventLeave: "leave", membership.EventFail: "fail"} {
		if e, ok := memberEvent(membership.Event{Type: typ, Member: m}); !ok || e.Kind != kind || e.Node != "n2" {
			t.Errorf("%v -> %+v, %v", typ, e, ok)
		}
	}
	if _, ok := memberEvent(membership.Event{Type: membership.EventUpdate, Member: m}); ok {
		t.Error("a load update is not an event")
	}
	a := &placement.Assignment{Stream: "live/a", Master: "n1", Epoch: 3}
	b := &placement.Assignment{Stream: "live/a", Master: "n2", Epoch: 9}
	moved := *a
	moved.Replicas = []string{"n3"}
	cases := []struct {
		ch   placement.Change
		kind string
	}{
		{placement.Change{Kind: placement.ChangeUpdate, Stream: "live/a", New: a}, "stream_new"},
		{placement.Change{Kind: placement.ChangeUpdate, Stream: "live/a", Old: a, New: b}, "master"},
		{placement.Change{Kind: placement.ChangeUpdate, Stream: "live/a", Old: a, New: &moved}, ""}, // replicas only
		{placement.Change{Kind: placement.ChangeDelete, Stream: "live/a", Old: a}, "stream_end"},
		{placement.Change{Kind: placement.ChangeContactLost}, "contact_lost"},
		{placement.Change{Kind: placement.ChangeContactRestore}, "contact_restored"},
	}
	for _, c := range cases {
		e, ok := placementEvent(c.ch)
		if (c.kind == "") == ok || e.Kind != c.kind {
			t.Errorf("%+v -> %+v, %v; want %q", c.ch, e, ok, c.kind)
		}
	}
}
