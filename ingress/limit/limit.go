// Package limit holds a node's budgets: max_connections across its RTMP and HTTP media
// sessions (SRS's max_connections), the separate budget of its API, and the pool of
// HTTP connections that wait without a request. Every refusal is logged rate-limited
// (conf/ratelog), so a flood costs a log line per interval with a count, not one per
// attempt.
//
// It imports conf/ratelog only; the RTMP and HTTP servers share it.
package limit

import (
	"sync/atomic"

	"go.uber.org/zap"

	"peer/conf/ratelog"
)

// Limiter counts holders of a slot against a maximum shared by every caller.
type Limiter struct {
	name    string
	max     int64
	log     *ratelog.Limiter
	active  atomic.Int64
	refused atomic.Uint64
}

// New allows up to max holders at once; max <= 0 means no limit. Refusals are counted;
// WithLog has them logged too.
func New(max int) *Limiter {
	return &Limiter{name: "max_connections", max: int64(max), log: ratelog.New(zap.NewNop(), 0)}
}

// WithLog logs refusals through log, rate-limited, naming the budget (e.g.
// "max_connections"); it returns l. Call it before l is shared.
func (l *Limiter) WithLog(name string, log *zap.Logger) *Limiter {
	l.name, l.log = name, ratelog.New(log, 0)
	return l
}

// Acquire takes a slot for the client at remote, or reports false when none is free:
// it counts the refusal and logs it at most once per ratelog interval.
func (l *Limiter) Acquire(remote string) bool {
	if n := l.active.Add(1); l.max > 0 && n > l.max {
		l.active.Add(-1)
		l.refused.Add(1)
		l.log.Warn(l.name, "refused: "+l.name+" reached", zap.Int64("max", l.max), zap.String("peer", remote))
		return false
	}
	return true
}

// Release frees a slot taken by Acquire.
func (l *Limiter) Release() { l.active.Add(-1) }

// Active is the number of slots held.
func (l *Limiter) Active() int64 { return l.active.Load() }

// Refused counts refusals since start.
func (l *Limiter) Refused() uint64 { return l.refused.Load() }
