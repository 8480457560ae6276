package placement

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"peer/conf/ratelog"
	"peer/membership"
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
	// ModifyIndex is the raft log index of the assignment's last change of any kind
	// (master, replicas or edges): compare-and-set compares it, so that a decision
	// made on an older view fails instead of erasing a change made since (an edge
	// join, say). The epoch stays the fencing token of the master.
	ModifyIndex uint64 `json:"mi,omitempty"`
	// MasterInc is the master's membership incarnation when it took the stream (0:
	// unknown, written before it was recorded). A master seen since with another
	// incarnation restarted and lost the publisher it had: it holds none until a
	// publish there acquires the stream again (liveness.holds).
	MasterInc int64 `json:"minc,omitempty"`
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
	return a.Stream == b.Stream && a.Master == b.Master && a.Epoch == b.Epoch && a.ModifyIndex == b.ModifyIndex &&
		a.MasterInc == b.MasterInc && slices.Equal(a.Replicas, b.Replicas) && slices.Equal(a.Edges, b.Edges)
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

// Command types (the FSM's "message types", as in nomad): each names one kind of
// change. A node refuses a type it does not know rather than skipping it, so that a
// mixed-version cluster fails loudly instead of diverging.
const (
	opCAS     = "cas"
	opEdge    = "edge"
	opMembers = "members"
)

// Command format versions. Entries written before versioning carry no version (0) and
// are read as version 1. Version 2 compares a CAS against the assignment's ModifyIndex
// instead of its epoch. A node refuses an entry of a newer version than it knows: it
// cannot know what the entry means, and applying a guess would diverge.
const (
	commandV1      = 1
	commandV2      = 2
	commandVersion = commandV2
)

// The placement protocol this node speaks (gossiped, checked at every join, see
// membership.Protocol): it reads every command version up to commandVersion and
// writes, as the leader, the highest version every member reads, down to protocolMin.
// This release cannot write version 1 (its CAS compared epochs and so could erase a
// concurrent edge join): its range is 2-2, and it mixes with a release that announces
// 2-3 (which writes 2 while a member of this release is in the cluster).
var builtinProtocol = membership.Protocol{Min: commandV2, Max: commandVersion}

type command struct {
	Op      string         `json:"op"`
	V       int            `json:"v,omitempty"`
	Updates []update       `json:"u,omitempty"`
	Stream  string         `json:"s,omitempty"`
	Node    string         `json:"n,omitempty"`
	Join    bool           `json:"j,omitempty"`
	Members []MemberRecord `json:"m,omitempty"`
}

// encodeCommand stamps cmd with command version v and encodes it for the log.
func encodeCommand(cmd command, v int) ([]byte, error) {
	cmd.V = v
	return json.Marshal(cmd)
}

// decodeCommand reads a log entry and refuses one this node cannot apply faithfully.
func decodeCommand(data []byte) (command, error) {
	var cmd command
	if err := json.Unmarshal(data, &cmd); err != nil {
		return cmd, fmt.Errorf("placement: undecodable command: %w", err)
	}
	if cmd.V == 0 {
		cmd.V = commandV1
	}
	if cmd.V < 0 || cmd.V > commandVersion {
		return cmd, fmt.Errorf("placement: command %q has version %d, this node knows up to %d: upgrade this node", cmd.Op, cmd.V, commandVersion)
	}
	switch cmd.Op {
	case opCAS, opEdge, opMembers:
		return cmd, nil
	}
	return cmd, fmt.Errorf("placement: unknown command type %q (version %d): upgrade this node", cmd.Op, cmd.V)
}

// update is a compare-and-set on one stream. From command version 2 on, it applies
// only if the stream's current ModifyIndex equals Expect (0 = the stream must not
// exist); with ExpectEpoch set, it compares the epoch instead (a master releasing its
// own stream: edge changes since it took the stream must not refuse the release).
// Version 1 entries compare Expect against the epoch.
type update struct {
	Stream      string   `json:"s"`
	Expect      uint64   `json:"x"`
	ExpectEpoch bool     `json:"xe,omitempty"`
	Delete      bool     `json:"d,omitempty"`
	Master      string   `json:"m,omitempty"`
	Replicas    []string `json:"r,omitempty"`
	Edges       []string `json:"e,omitempty"`
	NewEpoch    bool     `json:"ne,omitempty"`
	// MasterInc: Assignment.MasterInc; 0 keeps the current one when Master stays.
	MasterInc int64 `json:"minc,omitempty"`
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
	ChangeContactLost    ChangeKind = "contact_lost"     // this node became degraded: no leader for FenceTimeout, assignments may be stale
	ChangeContactRestore ChangeKind = "contact_restored" // it is no longer degraded: contact with a leader is back
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
	// index is the log index of the last entry applied (0 after a Restore until the
	// next one), under mu: the leader answers a change that can no longer apply
	// without writing an entry for it (Cluster.handle).
	index uint64

	changes, failovers atomic.Uint64 // see Stats
	refused            *ratelog.Limiter
}

// newFSM makes an empty FSM; notify (may be nil) receives its changes, log its
// refusals (nil: none).
func newFSM(notify func([]Change), log *zap.Logger) *FSM {
	if log == nil {
		log = zap.NewNop()
	}
	return &FSM{streams: map[string]*Assignment{}, members: map[string]MemberRecord{}, notify: notify, refused: ratelog.New(log, 0)}
}

// Apply implements raft.FSM. An entry this node cannot apply (undecodable, unknown
// type, newer version) changes nothing, is logged, and its error is the result.
func (f *FSM) Apply(l *raft.Log) interface{} {
	cmd, err := decodeCommand(l.Data)
	if err != nil {
		f.refused.Warn("fsm command", "refused a raft log entry: the state of this node may now differ from the cluster's",
			zap.Uint64("index", l.Index), zap.Error(err))
		return applyResult{Err: err}
	}
	var changes []Change
	res := applyResult{}
	f.mu.Lock()
	f.index = l.Index
	switch cmd.Op {
	case opCAS:
		for i, u := range cmd.Updates {
			cur := f.streams[u.Stream]
			var curEpoch, have uint64
			if cur != nil {
				curEpoch = cur.Epoch
				have = cur.ModifyIndex
				if cmd.V < commandV2 || u.ExpectEpoch {
					have = curEpoch
				}
			}
			if have == u.Expect {
				if u.Delete {
					if cur != nil {
						delete(f.streams, u.Stream)
						changes = append(changes, Change{Kind: ChangeDelete, Stream: u.Stream, Old: cur.clone()})
					}
				} else {
					n := &Assignment{Stream: u.Stream, Master: u.Master,
						Replicas: nonNil(u.Replicas), Edges: nonNil(u.Edges), Epoch: curEpoch, ModifyIndex: l.Index}
					if u.NewEpoch || cur == nil {
						n.Epoch = l.Index
					}
					n.MasterInc = u.MasterInc
					if n.MasterInc == 0 && cur != nil && cur.Master == u.Master {
						n.MasterInc = cur.MasterInc
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
				n.ModifyIndex = l.Index
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

// getAt is get with the index of the last entry applied to the state it read.
func (f *FSM) getAt(stream string) (*Assignment, uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.streams[stream].clone(), f.index
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

// snapshotVersion is the format of a snapshot; snapshots before versioning carry none
// (0) and their assignments no ModifyIndex (read as the epoch, the index of a change).
// A node refuses to restore a snapshot newer than it knows.
const snapshotVersion = 2

type snapshotData struct {
	Version int                     `json:"version,omitempty"`
	Streams map[string]*Assignment  `json:"streams"`
	Members map[string]MemberRecord `json:"members"`
}

// Snapshot implements raft.FSM; it copies the maps (cheap) under the lock.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	d := snapshotData{Version: snapshotVersion, Streams: make(map[string]*Assignment, len(f.streams)), Members: make(map[string]MemberRecord, len(f.members))}
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
	if d.Version > snapshotVersion {
		err := fmt.Errorf("placement: snapshot version %d is newer than this node's %d: upgrade this node", d.Version, snapshotVersion)
		f.refused.Warn("fsm snapshot", "refused a raft snapshot", zap.Error(err))
		return err
	}
	if d.Streams == nil {
		d.Streams = map[string]*Assignment{}
	}
	// A null entry would crash every reader of the table (FuzzFSMApply found it).
	for k, a := range d.Streams {
		if a == nil {
			delete(d.Streams, k)
		} else if a.ModifyIndex == 0 {
			a.ModifyIndex = a.Epoch
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
	f.index = 0 // the snapshot's index is raft's: skip no shortcut until the next entry
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
