package placement

import (
	"errors"
	"sync"

	"github.com/hashicorp/raft"
)

// closingStable is raft's stable store with a close that waits for the writes in flight.
// raft.Shutdown stops raft's own goroutines but not the transport's heartbeat fast path
// (processHeartbeat runs on the connection's goroutine): a heartbeat from a new leader
// that arrived during the shutdown saved the new term after the bolt file was closed,
// and raft panics on a failed store ("failed to save current term: database not open",
// which killed a placement test binary in CI). After close the store keeps nothing: the
// node is stopping, and a heartbeat's term is learnt again at the next contact.
type closingStable struct {
	raft.StableStore
	mu     sync.RWMutex
	closed bool
}

var errStableClosed = errors.New("placement: stable store closed")

func (s *closingStable) Set(key, val []byte) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil
	}
	return s.StableStore.Set(key, val)
}

func (s *closingStable) SetUint64(key []byte, val uint64) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil
	}
	return s.StableStore.SetUint64(key, val)
}

func (s *closingStable) Get(key []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errStableClosed
	}
	return s.StableStore.Get(key)
}

func (s *closingStable) GetUint64(key []byte) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, errStableClosed
	}
	return s.StableStore.GetUint64(key)
}

// close waits for the calls in flight; later writes are dropped.
func (s *closingStable) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}
