// Package limit caps a node's concurrent client connections (SRS's max_connections).
package limit

import "sync/atomic"

// Limiter counts connections against a maximum shared by every listener of a node.
type Limiter struct {
	max     int64
	active  atomic.Int64
	refused atomic.Uint64
}

// New allows up to max connections; max <= 0 means no limit.
func New(max int) *Limiter { return &Limiter{max: int64(max)} }

// Acquire takes a slot, or reports false (and counts a refusal) when none is free.
func (l *Limiter) Acquire() bool {
	if n := l.active.Add(1); l.max > 0 && n > l.max {
		l.active.Add(-1)
		l.refused.Add(1)
		return false
	}
	return true
}

// Release frees a slot taken by Acquire.
func (l *Limiter) Release() { l.active.Add(-1) }

// Active is the number of connections holding a slot.
func (l *Limiter) Active() int64 { return l.active.Load() }

// Refused counts connections turned away.
func (l *Limiter) Refused() uint64 { return l.refused.Load() }
