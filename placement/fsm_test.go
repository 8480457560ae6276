package placement

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"testing"

	"github.com/hashicorp/raft"
)

func applyCmd(t *testing.T, f *FSM, idx uint64, cmd command) applyResult {
	t.Helper()
	b, _ := json.Marshal(cmd)
	return f.Apply(&raft.Log{Index: idx, Data: b}).(applyResult)
}

type memSink struct {
	bytes.Buffer
}

func (s *memSink) ID() string    { return "x" }
func (s *memSink) Cancel() error { return nil }
func (s *memSink) Close() error  { return nil }

func TestFSMCompareAndSetEpochs(t *testing.T) {
	var changes []Change
	f := newFSM(func(c []Change) { changes = append(changes, c...) })
	r := applyCmd(t, f, 10, command{Op: opCAS, Updates: []update{{Stream: "s", Master: "a", Replicas: []string{"b", "c"}, NewEpoch: true}}})
	if r.Applied != 1 || r.Current.Epoch != 10 || r.Current.Master != "a" {
		t.Fatalf("%+v", r.Current)
	}
	// A second create (expect 0) loses: deterministic CAS.
	r = applyCmd(t, f, 11, command{Op: opCAS, Updates: []update{{Stream: "s", Master: "x", NewEpoch: true}}})
	if r.Applied != 0 || r.Current.Master != "a" {
		t.Fatalf("CAS must fail: %+v", r)
	}
	// Replica change without owner change keeps the epoch.
	r = applyCmd(t, f, 12, command{Op: opCAS, Updates: []update{{Stream: "s", Expect: 10, Master: "a", Replicas: []string{"d"}}}})
	if r.Applied != 1 || r.Current.Epoch != 10 {
		t.Fatalf("%+v", r.Current)
	}
	// Owner change: epoch = log index.
	r = applyCmd(t, f, 13, command{Op: opCAS, Updates: []update{{Stream: "s", Expect: 10, Master: "d", NewEpoch: true}}})
	if r.Applied != 1 || r.Current.Epoch != 13 {
		t.Fatalf("%+v", r.Current)
	}
	applyCmd(t, f, 14, command{Op: opEdge, Stream: "s", Node: "e", Join: true})
	applyCmd(t, f, 15, command{Op: opMembers, Members: []MemberRecord{{Name: "a", State: "alive", Incarnation: 1}}})
	// Stale delete refused; current delete accepted.
	if r = applyCmd(t, f, 16, command{Op: opCAS, Updates: []update{{Stream: "s", Expect: 10, Delete: true}}}); r.Applied != 0 {
		t.Fatal("stale delete applied")
	}
	applyCmd(t, f, 17, command{Op: opCAS, Updates: []update{{Stream: "t", Master: "a", NewEpoch: true}}})

	snap, _ := f.Snapshot()
	var sink memSink
	if err := snap.(*fsmSnapshot).Persist(&sink); err != nil {
		t.Fatal(err)
	}
	g := newFSM(nil)
	applyCmd(t, g, 1, command{Op: opCAS, Updates: []update{{Stream: "junk", Master: "z", NewEpoch: true}}})
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(g.all()) != fmt.Sprint(f.all()) {
		t.Fatalf("restore: %v vs %v", g.all(), f.all())
	}
	if _, ok := g.member("a"); !ok {
		t.Fatal("members not restored")
	}
	if a := g.get("s"); a.Epoch != 13 || a.Master != "d" || len(a.Edges) != 1 {
		t.Fatalf("%+v", a)
	}
	if len(changes) < 5 {
		t.Fatalf("changes: %d", len(changes))
	}
}

func TestDesiredVoters(t *testing.T) {
	want := map[int]int{1: 1, 2: 1, 3: 3, 4: 3, 5: 3, 6: 3, 7: 5, 9: 5, 50: 5}
	for n, w := range want {
		if g := desiredVoters(n, 5); g != w {
			t.Errorf("desiredVoters(%d)=%d want %d", n, g, w)
		}
	}
	if g := desiredVoters(11, 7); g != 7 {
		t.Errorf("max 7: %d", g)
	}
}

func TestRendezvousLowChurn(t *testing.T) {
	nodes := func(n int) []string {
		var out []string
		for i := 0; i < n; i++ {
			out = append(out, fmt.Sprintf("node-%d", i))
		}
		return out
	}
	top := func(stream string, ns []string) string {
		best, bs := "", -1.0
		for _, n := range ns {
			if s := rendezvousScore(stream, n, 1); s > bs {
				best, bs = n, s
			}
		}
		return best
	}
	before, after := nodes(20), nodes(21)
	moved := 0
	count := map[string]int{}
	for i := 0; i < 2000; i++ {
		s := fmt.Sprintf("live/%d", i)
		a, b := top(s, before), top(s, after)
		count[a]++
		if a != b {
			moved++
			if b != "node-20" {
				t.Fatalf("stream moved between old nodes: %s -> %s", a, b)
			}
		}
	}
	if moved < 40 || moved > 160 { // expect ~2000/21 = 95
		t.Fatalf("moved %d of 2000", moved)
	}
	for n, c := range count {
		if c < 50 || c > 170 { // expect 100 each
			t.Fatalf("unbalanced: %s has %d", n, c)
		}
	}
}
