package placement

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"peer/membership"
)

// applyV1 applies cmd as an entry written before command versions (no "v": CAS
// compares the epoch).
func applyV1(t *testing.T, f *FSM, idx uint64, cmd command) applyResult {
	t.Helper()
	b, _ := json.Marshal(cmd)
	return f.Apply(&raft.Log{Index: idx, Data: b}).(applyResult)
}

// applyCmd applies cmd as this version's leader writes it.
func applyCmd(t *testing.T, f *FSM, idx uint64, cmd command) applyResult {
	t.Helper()
	b, err := encodeCommand(cmd, commandVersion)
	if err != nil {
		t.Fatal(err)
	}
	return f.Apply(&raft.Log{Index: idx, Data: b}).(applyResult)
}

type memSink struct {
	bytes.Buffer
}

func (s *memSink) ID() string    { return "x" }
func (s *memSink) Cancel() error { return nil }
func (s *memSink) Close() error  { return nil }

// TestFSMCompareAndSetEpochs: entries from before command versions compare the epoch.
func TestFSMCompareAndSetEpochs(t *testing.T) {
	var changes []Change
	f := newFSM(func(c []Change) { changes = append(changes, c...) }, nil)
	r := applyV1(t, f, 10, command{Op: opCAS, Updates: []update{{Stream: "s", Master: "a", Replicas: []string{"b", "c"}, NewEpoch: true}}})
	if r.Applied != 1 || r.Current.Epoch != 10 || r.Current.Master != "a" {
		t.Fatalf("%+v", r.Current)
	}
	// A second create (expect 0) loses: deterministic CAS.
	r = applyV1(t, f, 11, command{Op: opCAS, Updates: []update{{Stream: "s", Master: "x", NewEpoch: true}}})
	if r.Applied != 0 || r.Current.Master != "a" {
		t.Fatalf("CAS must fail: %+v", r)
	}
	// Replica change without owner change keeps the epoch.
	r = applyV1(t, f, 12, command{Op: opCAS, Updates: []update{{Stream: "s", Expect: 10, Master: "a", Replicas: []string{"d"}}}})
	if r.Applied != 1 || r.Current.Epoch != 10 {
		t.Fatalf("%+v", r.Current)
	}
	// Owner change: epoch = log index.
	r = applyV1(t, f, 13, command{Op: opCAS, Updates: []update{{Stream: "s", Expect: 10, Master: "d", NewEpoch: true}}})
	if r.Applied != 1 || r.Current.Epoch != 13 {
		t.Fatalf("%+v", r.Current)
	}
	applyV1(t, f, 14, command{Op: opEdge, Stream: "s", Node: "e", Join: true})
	applyV1(t, f, 15, command{Op: opMembers, Members: []MemberRecord{{Name: "a", State: "alive", Incarnation: 1}}})
	// Stale delete refused; current delete accepted.
	if r = applyV1(t, f, 16, command{Op: opCAS, Updates: []update{{Stream: "s", Expect: 10, Delete: true}}}); r.Applied != 0 {
		t.Fatal("stale delete applied")
	}
	applyV1(t, f, 17, command{Op: opCAS, Updates: []update{{Stream: "t", Master: "a", NewEpoch: true}}})

	snap, _ := f.Snapshot()
	var sink memSink
	if err := snap.(*fsmSnapshot).Persist(&sink); err != nil {
		t.Fatal(err)
	}
	g := newFSM(nil, nil)
	applyV1(t, g, 1, command{Op: opCAS, Updates: []update{{Stream: "junk", Master: "z", NewEpoch: true}}})
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

// TestFSMCompareAndSetModifyIndex: a decision taken on an older view of a stream (a
// reconcile that read it before an edge joined) is refused, instead of erasing the
// edge; a master's release compares its epoch and succeeds after edge changes.
func TestFSMCompareAndSetModifyIndex(t *testing.T) {
	f := newFSM(nil, nil)
	r := applyCmd(t, f, 10, command{Op: opCAS, Updates: []update{{Stream: "s", Master: "a", Replicas: []string{"b"}, NewEpoch: true}}})
	if r.Applied != 1 || r.Current.Epoch != 10 || r.Current.ModifyIndex != 10 {
		t.Fatalf("%+v", r.Current)
	}
	seen := *r.Current // what a reconcile round reads
	if r = applyCmd(t, f, 11, command{Op: opEdge, Stream: "s", Node: "e", Join: true}); r.Current.ModifyIndex != 11 || r.Current.Epoch != 10 {
		t.Fatalf("edge join: %+v", r.Current)
	}
	// The stale reconcile writes the edges it saw (none): refused, the edge stays.
	r = applyCmd(t, f, 12, command{Op: opCAS, Updates: []update{{Stream: "s", Expect: seen.ModifyIndex, Master: "a", Replicas: []string{"c"}, Edges: seen.Edges}}})
	if r.Applied != 0 || len(r.Current.Edges) != 1 {
		t.Fatalf("stale CAS applied over an edge join: %+v", r)
	}
	// On the current view it applies, keeps the epoch and moves the ModifyIndex.
	r = applyCmd(t, f, 13, command{Op: opCAS, Updates: []update{{Stream: "s", Expect: 11, Master: "a", Replicas: []string{"c"}, Edges: r.Current.Edges}}})
	if r.Applied != 1 || r.Current.Epoch != 10 || r.Current.ModifyIndex != 13 || len(r.Current.Edges) != 1 {
		t.Fatalf("%+v", r)
	}
	// Release by the master at its epoch, after changes that kept the epoch.
	if r = applyCmd(t, f, 14, command{Op: opCAS, Updates: []update{{Stream: "s", Expect: 10, ExpectEpoch: true, Delete: true}}}); r.Applied != 1 || f.get("s") != nil {
		t.Fatalf("release: %+v", r)
	}
}

// TestFSMRefusesUnknownCommands: an unknown type or a newer version is an error from
// Apply and changes nothing; so is a newer snapshot. An old snapshot (no version, no
// ModifyIndex) restores with ModifyIndex = epoch.
func TestFSMRefusesUnknownCommands(t *testing.T) {
	f := newFSM(nil, nil)
	applyCmd(t, f, 1, command{Op: opCAS, Updates: []update{{Stream: "s", Master: "a", NewEpoch: true}}})
	before := fmt.Sprint(f.all())
	for _, data := range []string{
		`{"op":"cas","v":3,"u":[{"s":"s","x":1,"d":true}]}`,
		`{"op":"evict","v":2,"s":"s"}`,
		`{"op":"","u":[{"s":"s","x":1,"d":true}]}`,
		`{"op":"cas","v":-1,"u":[{"s":"s","x":1,"d":true}]}`,
	} {
		r := f.Apply(&raft.Log{Index: 2, Data: []byte(data)}).(applyResult)
		if r.Err == nil || r.Applied != 0 {
			t.Errorf("%s: accepted (%+v)", data, r)
		}
	}
	if after := fmt.Sprint(f.all()); after != before {
		t.Fatalf("state changed by refused commands: %s -> %s", before, after)
	}
	if err := f.Restore(io.NopCloser(bytes.NewReader([]byte(`{"version":3,"streams":{},"members":{}}`)))); err == nil {
		t.Fatal("restored a snapshot of a newer version")
	}
	if fmt.Sprint(f.all()) != before {
		t.Fatal("state changed by a refused snapshot")
	}
	old := `{"streams":{"live/a":{"stream":"live/a","master":"n1","replicas":[],"edges":[],"epoch":7}},"members":{}}`
	if err := f.Restore(io.NopCloser(bytes.NewReader([]byte(old)))); err != nil {
		t.Fatal(err)
	}
	if a := f.get("live/a"); a == nil || a.ModifyIndex != 7 {
		t.Fatalf("old snapshot: %+v", a)
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

// TestPromotionSafe: a promotion fills the voter set up to the desired count and must not
// make the quorum depend on the candidate, unless the failed voters cannot be removed
// (too few healthy voters for MinQuorum).
func TestPromotionSafe(t *testing.T) {
	cases := []struct {
		voters, healthy, desired int
		want                     bool
	}{
		{1, 1, 3, true},  // growing from a bootstrapped cluster of one
		{2, 2, 3, true},  // 3 voters, quorum 2
		{3, 3, 5, true},  // 4 voters, quorum 3
		{4, 4, 5, true},  // 5 voters, quorum 3
		{5, 5, 5, false}, // full
		{5, 3, 5, false}, // make sim: 2 of 5 voters dead; 6 voters would need 4 of 3 sure
		{5, 4, 5, false}, // make sim: 1 of 5 dead, another undetected: remove first
		{4, 3, 5, true},  // after a dead voter is removed: 5 voters need 3
		{3, 2, 3, true},  // dead voter not removable (MinQuorum 3): the only way to heal
		{3, 1, 3, false}, // 4 voters need 3: 1 healthy + candidate is not enough
	}
	for _, c := range cases {
		if got := promotionSafe(c.voters, c.healthy, c.desired, 3); got != c.want {
			t.Errorf("promotionSafe(%d voters, %d healthy, %d desired) = %v, want %v", c.voters, c.healthy, c.desired, got, c.want)
		}
	}
}

// TestFencingTimingsChecked: the default grace keeps fencing ahead of the fastest
// failover with the default and the slower gossip timings, and New refuses a config
// where a master could still serve after its stream moved, naming the values.
func TestFencingTimingsChecked(t *testing.T) {
	for _, g := range []membership.Timing{membership.FastLAN(), membership.LAN()} {
		c := Config{Gossip: g}
		c.setDefaults()
		if err := c.checkFencing(); err != nil {
			t.Errorf("defaults refused: %v", err)
		}
		if margin := g.MinDetection() + c.FailoverGrace - c.FenceTimeout - fenceCheck; margin < fenceMargin {
			t.Errorf("default margin %v (grace %v, detection %v)", margin, c.FailoverGrace, g.MinDetection())
		}
	}
	// The old defaults: fence 1 s (+0.1 s check) against 0.5 s detection + 0.5 s grace.
	bad := Config{Name: "n1", InMemory: true, GossipAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0",
		FailoverGrace: 500 * time.Millisecond, FenceTimeout: time.Second}
	_, err := New(bad, nil)
	if err == nil {
		t.Fatal("accepted fence 1 s against detection 0.5 s + grace 0.5 s")
	}
	for _, want := range []string{"fence timeout 1s", "detection 500ms", "failover grace 500ms"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}
