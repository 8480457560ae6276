package placement

import (
	"encoding/json"
	"io"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// Assignment is the placement of one live stream.
type Assignment struct {
	Stream   string   `json:"stream"`
	Master   string   `json:"master"`
	Replicas []string `json:"replicas"`
	Edges    []string `json:"edges"`
	// Epoch is the raft log index of the last change of master: it grows
	// with every change of owner and is unique per stream.
	Epoch uint64 `json:"epoch"`
}

func (a *Assignment) clone() *Assignment {
	if a == nil {
		return nil
	}
	c := *a
	c.Replicas = append([]string{}, a.Replicas...)
	c.Edges = append([]string{}, a.Edges...)
	return &c
}

func (a *Assignment) equal(b *Assignment) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Stream == b.Stream && a.Master == b.Master && a.Epoch == b.Epoch &&
		slices.Equal(a.Replicas, b.Replicas) && slices.Equal(a.Edges, b.Edges)
}

// MemberRecord is the replicated view of a node (written by the leader).
type MemberRecord struct {
	Name        string `json:"name"`
	RTMP        string `json:"rtmp,omitempty"`
	HTTP        string `json:"http,omitempty"`
	Raft        string `json:"raft,omitempty"`
	State       string `json:"state"` // alive, dead, left, leaving
	Incarnation int64  `json:"inc"`
	// Key is the fingerprint of the node's identity key: the name belongs to that key
	// while its holder lives (Cluster.trusted).
	Key string `json:"key,omitempty"`
}

// command ops
const (
	opCAS     = "cas"
	opEdge    = "edge"
	opMembers = "members"
)

type command struct {
	Op      string         `json:"op"`
	Updates []update       `json:"u,omitempty"`
	Stream  string         `json:"s,omitempty"`
	Node    string         `json:"n,omitempty"`
	Join    bool           `json:"j,omitempty"`
	Members []MemberRecord `json:"m,omitempty"`
}

// update is a compare-and-set on one stream: applied only if the stream's
// current epoch equals Expect (0 = the stream must not exist).
type update struct {
	Stream   string   `json:"s"`
	Expect   uint64   `json:"x"`
	Delete   bool     `json:"d,omitempty"`
	Master   string   `json:"m,omitempty"`
	Replicas []string `json:"r,omitempty"`
	Edges    []string `json:"e,omitempty"`
	NewEpoch bool     `json:"ne,omitempty"`
}

type applyResult struct {
	Applied int
	// Current state of the (first) stream after the command.
	Current *Assignment
	Err     error
}

// ChangeKind of a Change.
type ChangeKind string

// Change kinds.
const (
	ChangeUpdate         ChangeKind = "update"           // stream created or changed
	ChangeDelete         ChangeKind = "delete"           // stream removed
	ChangeContactLost    ChangeKind = "contact_lost"     // this node lost the leader: assignments are not trustworthy
	ChangeContactRestore ChangeKind = "contact_restored" // contact with a leader is back
)

// Change is delivered to local subscribers when the FSM (or this node's
// standing) changes.
type Change struct {
	Kind   ChangeKind
	Stream string
	Old    *Assignment // nil for a new stream
	New    *Assignment // nil for a deleted stream
}

// FSM is the replicated placement state.
type FSM struct {
	mu      sync.RWMutex
	streams map[string]*Assignment
	members map[string]MemberRecord
	notify  func([]Change)

	changes, failovers atomic.Uint64 // see Stats
}

func newFSM(notify func([]Change)) *FSM {
	return &FSM{streams: map[string]*Assignment{}, members: map[string]MemberRecord{}, notify: notify}
}

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) interface{} {
	var cmd command
	if err := json.Unmarshal(l.Data, &cmd); err != nil {
		return applyResult{Err: err}
	}
	var changes []Change
	res := applyResult{}
	f.mu.Lock()
	switch cmd.Op {
	case opCAS:
		for i, u := range cmd.Updates {
			cur := f.streams[u.Stream]
			var curEpoch uint64
			if cur != nil {
				curEpoch = cur.Epoch
			}
			if curEpoch == u.Expect {
				if u.Delete {
					if cur != nil {
						delete(f.streams, u.Stream)
						changes = append(changes, Change{Kind: ChangeDelete, Stream: u.Stream, Old: cur.clone()})
					}
				} else {
					n := &Assignment{Stream: u.Stream, Master: u.Master,
						Replicas: nonNil(u.Replicas), Edges: nonNil(u.Edges), Epoch: curEpoch}
					if u.NewEpoch || cur == nil {
						n.Epoch = l.Index
					}
					f.streams[u.Stream] = n
					changes = append(changes, Change{Kind: ChangeUpdate, Stream: u.Stream, Old: cur.clone(), New: n.clone()})
				}
				res.Applied++
			}
			if i == 0 {
				res.Current = f.streams[u.Stream].clone()
			}
		}
	case opEdge:
		cur := f.streams[cmd.Stream]
		if cur != nil {
			has := slices.Contains(cur.Edges, cmd.Node)
			if cmd.Join != has {
				n := cur.clone()
				if cmd.Join {
					n.Edges = append(n.Edges, cmd.Node)
					sort.Strings(n.Edges)
				} else {
					n.Edges = slices.DeleteFunc(n.Edges, func(s string) bool { return s == cmd.Node })
				}
				f.streams[cmd.Stream] = n
				changes = append(changes, Change{Kind: ChangeUpdate, Stream: cmd.Stream, Old: cur.clone(), New: n.clone()})
				res.Applied = 1
			}
			res.Current = f.streams[cmd.Stream].clone()
		}
	case opMembers:
		for _, m := range cmd.Members {
			f.members[m.Name] = m
		}
		res.Applied = len(cmd.Members)
	}
	f.mu.Unlock()
	f.countChanges(changes)
	if len(changes) > 0 && f.notify != nil {
		f.notify(changes)
	}
	return res
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return append([]string{}, s...)
}

func (f *FSM) get(stream string) *Assignment {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.streams[stream].clone()
}

func (f *FSM) all() []Assignment {
	f.mu.RLock()
	out := make([]Assignment, 0, len(f.streams))
	for _, a := range f.streams {
		out = append(out, *a.clone())
	}
	f.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Stream < out[j].Stream })
	return out
}

func (f *FSM) member(name string) (MemberRecord, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m, ok := f.members[name]
	return m, ok
}

func (f *FSM) memberList() []MemberRecord {
	f.mu.RLock()
	out := make([]MemberRecord, 0, len(f.members))
	for _, m := range f.members {
		out = append(out, m)
	}
	f.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// masterCounts: streams mastered per node.
func (f *FSM) masterCounts() map[string]int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	c := map[string]int{}
	for _, a := range f.streams {
		c[a.Master]++
	}
	return c
}

type snapshotData struct {
	Streams map[string]*Assignment  `json:"streams"`
	Members map[string]MemberRecord `json:"members"`
}

// Snapshot implements raft.FSM; it copies the maps (cheap) under the lock.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	d := snapshotData{Streams: make(map[string]*Assignment, len(f.streams)), Members: make(map[string]MemberRecord, len(f.members))}
	for k, v := range f.streams {
		d.Streams[k] = v.clone()
	}
	for k, v := range f.members {
		d.Members[k] = v
	}
	return &fsmSnapshot{d: d}, nil
}

// Restore implements raft.FSM; it replaces all state.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var d snapshotData
	if err := json.NewDecoder(rc).Decode(&d); err != nil {
		return err
	}
	if d.Streams == nil {
		d.Streams = map[string]*Assignment{}
	}
	// A null entry would crash every reader of the table (FuzzFSMApply found it).
	for k, a := range d.Streams {
		if a == nil {
			delete(d.Streams, k)
		}
	}
	if d.Members == nil {
		d.Members = map[string]MemberRecord{}
	}
	var changes []Change
	f.mu.Lock()
	for k, old := range f.streams {
		if _, ok := d.Streams[k]; !ok {
			changes = append(changes, Change{Kind: ChangeDelete, Stream: k, Old: old.clone()})
		}
	}
	for k, n := range d.Streams {
		if old := f.streams[k]; !old.equal(n) {
			changes = append(changes, Change{Kind: ChangeUpdate, Stream: k, Old: old.clone(), New: n.clone()})
		}
	}
	f.streams = d.Streams
	f.members = d.Members
	f.mu.Unlock()
	if len(changes) > 0 && f.notify != nil {
		f.notify(changes)
	}
	return nil
}

type fsmSnapshot struct{ d snapshotData }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(&s.d); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
