package placement

import (
	"testing"

	"github.com/hashicorp/raft"
)

// TestClosingStableDropsLateWrites: a term saved after the store closed (a heartbeat
// handled during the shutdown) is dropped instead of failing, which raft panics on.
func TestClosingStableDropsLateWrites(t *testing.T) {
	s := &closingStable{StableStore: raft.NewInmemStore()}
	if err := s.SetUint64([]byte("CurrentTerm"), 1); err != nil {
		t.Fatal(err)
	}
	s.close()
	if err := s.SetUint64([]byte("CurrentTerm"), 2); err != nil {
		t.Fatalf("a write after close: %v, want it dropped", err)
	}
	if err := s.Set([]byte("k"), []byte("v")); err != nil {
		t.Fatalf("a write after close: %v, want it dropped", err)
	}
	if _, err := s.GetUint64([]byte("CurrentTerm")); err == nil {
		t.Fatal("a read after close answered")
	}
}
