package placement

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"sort"
	"testing"

	"github.com/hashicorp/raft"
	"pgregory.net/rapid"
)

// modelStream is the model's placement of one stream.
type modelStream struct {
	master        string
	replicas      []string
	edges         []string
	epoch, modIdx uint64
}

// fsmModel drives several FSM replicas through the same random log (commands,
// refused commands, snapshots, restores of a lagging replica from a snapshot plus the
// rest of the log) and checks them against a plain model of the compare-and-set rules.
type fsmModel struct {
	replicas []*FSM
	log      []*raft.Log // every entry so far, index i+1 at log[i]
	snaps    []snapAt
	model    map[string]*modelStream
}

type snapAt struct {
	data  []byte
	index uint64 // entries up to this index are in the snapshot
}

var (
	modelStreams = []string{"live/a", "live/b", "live/c"}
	modelNodes   = []string{"n1", "n2", "n3", "n4"}
)

// apply appends an entry to the log and applies it to every replica; all must return
// the same result.
func (m *fsmModel) apply(t *rapid.T, data []byte) applyResult {
	l := &raft.Log{Index: uint64(len(m.log) + 1), Data: data}
	m.log = append(m.log, l)
	var first applyResult
	for i, f := range m.replicas {
		r := f.Apply(l).(applyResult)
		if i == 0 {
			first = r
			continue
		}
		if r.Applied != first.Applied || !r.Current.equal(first.Current) || (r.Err == nil) != (first.Err == nil) {
			t.Fatalf("replica %d returned %+v, replica 0 %+v", i, r, first)
		}
	}
	return first
}

func (m *fsmModel) cas(t *rapid.T) {
	stream := rapid.SampledFrom(modelStreams).Draw(t, "stream")
	cur := m.model[stream]
	// The expectation: the current ModifyIndex, the epoch, 0, or a stale index.
	var exp uint64
	switch rapid.IntRange(0, 3).Draw(t, "expect") {
	case 0:
		if cur != nil {
			exp = cur.modIdx
		}
	case 1:
		if cur != nil {
			exp = cur.epoch
		}
	case 2:
		exp = 0
	case 3:
		exp = rapid.Uint64Range(0, uint64(len(m.log)+1)).Draw(t, "stale")
	}
	u := update{Stream: stream, Expect: exp, ExpectEpoch: rapid.Bool().Draw(t, "byEpoch"),
		Delete: rapid.IntRange(0, 4).Draw(t, "del") == 0, NewEpoch: rapid.Bool().Draw(t, "newEpoch")}
	if !u.Delete {
		u.Master = rapid.SampledFrom(modelNodes).Draw(t, "master")
		u.Replicas = rapid.SliceOfNDistinct(rapid.SampledFrom(modelNodes), 0, 2, rapid.ID[string]).Draw(t, "replicas")
		u.Edges = rapid.SliceOfNDistinct(rapid.SampledFrom(modelNodes), 0, 2, rapid.ID[string]).Draw(t, "edges")
		sort.Strings(u.Edges)
	}
	b, err := encodeCommand(command{Op: opCAS, Updates: []update{u}}, commandVersion)
	if err != nil {
		t.Fatal(err)
	}
	idx := uint64(len(m.log) + 1)
	res := m.apply(t, b)

	var have uint64
	if cur != nil {
		have = cur.modIdx
		if u.ExpectEpoch {
			have = cur.epoch
		}
	}
	want := have == exp
	if res.Err != nil || (res.Applied == 1) != want {
		t.Fatalf("CAS %+v on %+v (have %d): applied %d err %v, want applied=%v", u, cur, have, res.Applied, res.Err, want)
	}
	if !want {
		// The conflict is reported with the current state.
		if (cur == nil) != (res.Current == nil) || (cur != nil && res.Current.ModifyIndex != cur.modIdx) {
			t.Fatalf("conflict reports %+v, state is %+v", res.Current, cur)
		}
		return
	}
	switch {
	case u.Delete:
		delete(m.model, stream)
	default:
		n := &modelStream{master: u.Master, replicas: nonNil(u.Replicas), edges: nonNil(u.Edges), modIdx: idx}
		if cur != nil && !u.NewEpoch {
			n.epoch = cur.epoch
		} else {
			n.epoch = idx
		}
		m.model[stream] = n
	}
}

func (m *fsmModel) edge(t *rapid.T) {
	stream := rapid.SampledFrom(modelStreams).Draw(t, "stream")
	node := rapid.SampledFrom(modelNodes).Draw(t, "node")
	join := rapid.Bool().Draw(t, "join")
	b, _ := encodeCommand(command{Op: opEdge, Stream: stream, Node: node, Join: join}, commandVersion)
	idx := uint64(len(m.log) + 1)
	res := m.apply(t, b)
	cur := m.model[stream]
	if cur == nil {
		if res.Current != nil || res.Applied != 0 {
			t.Fatalf("edge on a missing stream: %+v", res)
		}
		return
	}
	if slices.Contains(cur.edges, node) != join {
		if join {
			cur.edges = append(cur.edges, node)
			sort.Strings(cur.edges)
		} else {
			cur.edges = slices.DeleteFunc(cur.edges, func(s string) bool { return s == node })
		}
		cur.modIdx = idx
	}
}

// refused: an unknown type or a newer version changes nothing on any replica.
func (m *fsmModel) refused(t *rapid.T) {
	data := rapid.SampledFrom([]string{
		fmt.Sprintf(`{"op":"cas","v":%d,"u":[{"s":"live/a","x":0,"m":"n1"}]}`, commandVersion+1),
		`{"op":"evict","v":2,"s":"live/a"}`,
		`not json`,
	}).Draw(t, "data")
	if res := m.apply(t, []byte(data)); res.Err == nil || res.Applied != 0 {
		t.Fatalf("%s accepted: %+v", data, res)
	}
}

func (m *fsmModel) snapshot(t *rapid.T) {
	i := rapid.IntRange(0, len(m.replicas)-1).Draw(t, "replica")
	s, err := m.replicas[i].Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := s.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	m.snaps = append(m.snaps, snapAt{data: sink.Bytes(), index: uint64(len(m.log))})
}

// restore rebuilds one replica (a fresh one or an existing one with state) from a
// snapshot, then replays the log after it, as raft does for a lagging follower.
func (m *fsmModel) restore(t *rapid.T) {
	if len(m.snaps) == 0 {
		t.Skip("no snapshot yet")
	}
	s := rapid.SampledFrom(m.snaps).Draw(t, "snap")
	i := rapid.IntRange(0, len(m.replicas)-1).Draw(t, "replica")
	f := m.replicas[i]
	if rapid.Bool().Draw(t, "fresh") {
		f = newFSM(nil, nil)
	}
	if err := f.Restore(io.NopCloser(bytes.NewReader(s.data))); err != nil {
		t.Fatal(err)
	}
	for _, l := range m.log[s.index:] {
		f.Apply(l)
	}
	m.replicas[i] = f
}

// check: every replica's state is the model's.
func (m *fsmModel) check(t *rapid.T) {
	var want []string
	for _, name := range modelStreams {
		if s := m.model[name]; s != nil {
			want = append(want, fmt.Sprintf("%s %s %v %v %d %d", name, s.master, s.replicas, s.edges, s.epoch, s.modIdx))
		}
	}
	for i, f := range m.replicas {
		var got []string
		for _, a := range f.all() {
			got = append(got, fmt.Sprintf("%s %s %v %v %d %d", a.Stream, a.Master, a.Replicas, a.Edges, a.Epoch, a.ModifyIndex))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("replica %d:\n got %q\nwant %q", i, got, want)
		}
	}
}

// TestFSMModel: random sequences of commands, refused commands, snapshots and restores
// on three replicas give identical state, equal to the model's, and every CAS either
// applies or reports the conflict with the current state.
func TestFSMModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := &fsmModel{model: map[string]*modelStream{}}
		for range 3 {
			m.replicas = append(m.replicas, newFSM(nil, nil))
		}
		t.Repeat(map[string]func(*rapid.T){
			"cas":      m.cas,
			"edge":     m.edge,
			"refused":  m.refused,
			"snapshot": m.snapshot,
			"restore":  m.restore,
			"":         m.check,
		})
	})
}
