package placement

import (
	"sort"
	"time"

	"github.com/hashicorp/raft"

	"peer/membership"
)

// MemberView is one member in the /api/v1/cluster JSON.
type MemberView struct {
	Name  string `json:"name"`
	State string `json:"state"` // alive dead left
	Raft  string `json:"raft"`  // leader voter nonvoter none
	RTMP  string `json:"rtmp"`
	HTTP  string `json:"http"`
	// Witness marks a voter that carries no media (`peer run --witness`).
	Witness bool `json:"witness,omitempty"`
}

// View is this node's picture of the cluster: the /api/v1/cluster JSON of INTERFACE.md
// without the HTTP API's envelope (its "code"), which package web adds.
type View struct {
	Self   string `json:"self"`
	Leader string `json:"leader"` // "" while degraded
	// Degraded: this node is out of contact with a Raft leader (Cluster.Degraded): it
	// serves what it has, its streams may be stale, new publishes stay local.
	Degraded bool `json:"degraded"`
	// DegradedSince is when it became degraded (omitted when it is not).
	DegradedSince *time.Time   `json:"degraded_since,omitempty"`
	Members       []MemberView `json:"members"`
	Streams       []Assignment `json:"streams"`
}

// View builds the cluster view from this node's gossip view, raft
// configuration and FSM.
func (c *Cluster) View() View {
	v := View{Self: c.name, Leader: c.Leader(), Degraded: c.Degraded(), Members: []MemberView{}, Streams: c.fsm.all()}
	if v.Degraded {
		// A leader it cannot hear from is not one it can name.
		v.Leader = ""
		if t := c.DegradedSince(); !t.IsZero() {
			v.DegradedSince = &t
		}
	}
	roles := map[string]string{}
	if f := c.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				roles[string(s.ID)] = "voter"
			} else {
				roles[string(s.ID)] = "nonvoter"
			}
		}
	}
	if v.Leader != "" {
		roles[v.Leader] = "leader"
	}
	seen := map[string]bool{}
	add := func(mv MemberView) {
		if seen[mv.Name] {
			return
		}
		seen[mv.Name] = true
		mv.Raft = roles[mv.Name]
		if mv.Raft == "" {
			mv.Raft = "none"
		}
		v.Members = append(v.Members, mv)
	}
	for _, m := range c.mem.Members() {
		add(MemberView{Name: m.Name, State: string(m.State), RTMP: m.RTMP, HTTP: m.HTTP, Witness: m.Witness})
	}
	for _, r := range c.fsm.memberList() {
		st := r.State
		if st == "leaving" || st == "alive" {
			st = string(membership.StateDead) // replicated as alive but not in our gossip view
		}
		add(MemberView{Name: r.Name, State: st, RTMP: r.RTMP, HTTP: r.HTTP})
	}
	for id := range roles {
		add(MemberView{Name: id, State: string(membership.StateDead)})
	}
	sort.Slice(v.Members, func(i, j int) bool { return v.Members[i].Name < v.Members[j].Name })
	for i := range v.Streams {
		if v.Streams[i].Replicas == nil {
			v.Streams[i].Replicas = []string{}
		}
		if v.Streams[i].Edges == nil {
			v.Streams[i].Edges = []string{}
		}
	}
	return v
}
