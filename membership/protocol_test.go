package membership

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCompatible(t *testing.T) {
	meta := func(name string, min, max int) Meta {
		return Meta{Name: name, Version: "v-" + name, ProtoMin: min, ProtoMax: max}
	}
	for _, tc := range []struct {
		self, other Meta
		newer       string // "" = compatible
	}{
		{meta("a", 2, 2), meta("b", 2, 2), ""},
		{meta("a", 2, 2), meta("b", 2, 3), ""}, // the next release, one version apart
		{meta("a", 2, 3), meta("b", 2, 2), ""},
		{meta("a", 2, 2), meta("b", 0, 0), ""}, // announces nothing: LegacyProtocol
		{meta("a", 2, 2), meta("b", 3, 4), "b"},
		{meta("a", 3, 4), meta("b", 2, 2), "a"},
		{meta("a", 2, 2), meta("b", 1, 1), "a"},
		{meta("a", 3, 3), meta("b", 0, 0), "a"},
	} {
		err := Compatible(tc.self, tc.other)
		if tc.newer == "" {
			if err != nil {
				t.Errorf("%v with %v: %v", tc.self.Protocol(), tc.other.Protocol(), err)
			}
			continue
		}
		if !errors.Is(err, ErrIncompatible) {
			t.Fatalf("%v with %v: %v, want ErrIncompatible", tc.self.Protocol(), tc.other.Protocol(), err)
		}
		for _, part := range []string{tc.self.Protocol().String(), tc.other.Protocol().String(), "v-a", "v-b", tc.newer + " is too new"} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("%q does not say %q", err, part)
			}
		}
	}
}

// TestJoinRefusesIncompatibleProtocol: a node speaking only newer protocol versions
// cannot join (its Join says why, naming both versions) and no member lists it; one
// version apart joins.
func TestJoinRefusesIncompatibleProtocol(t *testing.T) {
	withProto := func(name string, min, max int, seeds ...string) (*Membership, error) {
		m, err := New(Config{Name: name, BindAddr: "127.0.0.1:0", ClusterKey: "key",
			Meta: Meta{Version: "t-" + name, ProtoMin: min, ProtoMax: max}}, logger())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Shutdown)
		return m, m.Join(seeds)
	}
	a, _ := withProto("a", 2, 2)
	b, err := withProto("b", 2, 2, a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	_, err = withProto("new", 3, 4, a.Addr())
	if !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "3-4") || !strings.Contains(err.Error(), "speaks 2") {
		t.Fatalf("join of a too new node: %v", err)
	}
	_, err = withProto("next", 2, 3, b.Addr())
	if err != nil {
		t.Fatalf("join one version apart: %v", err)
	}
	waitFor(t, 3*time.Second, "next seen by a", func() bool { return state(a, "next") == StateAlive })
	time.Sleep(300 * time.Millisecond) // gossip rounds in which "new" could have slipped in
	for _, m := range []*Membership{a, b} {
		if _, ok := m.Member("new"); ok {
			t.Errorf("%s lists the refused node", m.Name())
		}
	}
	if mm, _ := a.Member("next"); mm.Protocol != (Protocol{2, 3}) {
		t.Errorf("next's protocol as seen by a: %v", mm.Protocol)
	}
}
