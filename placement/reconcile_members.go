package placement

import (
	"peer/membership"
)

// syncMembers writes the gossip view (addresses and state) into the FSM.
func (c *Cluster) syncMembers() error {
	var recs []MemberRecord
	for _, m := range c.mem.Members() {
		st := string(m.State)
		if m.Leaving && m.State == membership.StateAlive {
			st = "leaving"
		}
		old, ok := c.fsm.member(m.Name)
		if ok && old.State == "leaving" && old.Incarnation == m.Incarnation && m.State == membership.StateAlive {
			st = "leaving"
		}
		r := MemberRecord{Name: m.Name, RTMP: m.RTMP, HTTP: m.HTTP, Raft: m.Raft, State: st, Incarnation: m.Incarnation, Key: m.Key}
		if !ok || old != r {
			recs = append(recs, r)
		}
	}
	if len(recs) == 0 {
		return nil
	}
	_, err := c.apply(command{Op: opMembers, Members: recs})
	return err
}
