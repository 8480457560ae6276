// Package ratelog logs repeated refusals at a bounded rate: the first of a kind is logged
// at once, later ones within the interval are only counted and reported with the next
// line of that kind. A flood of bad clients then costs a line per interval, not a line
// per attempt, and the count still tells the operator how many there were.
//
// It imports only zap, so any package may use it.
package ratelog

import (
	"sync"
	"time"

	"go.uber.org/zap"
)

// DefaultInterval is how often a kind of refusal is logged at most.
const DefaultInterval = 10 * time.Second

// maxKinds bounds the kinds tracked at once; kinds come from code, not from the
// network, but a caller that puts a client's input in a kind must not grow this.
const maxKinds = 256

// Limiter rate-limits log lines by kind. The zero value is not usable; use New.
type Limiter struct {
	log      *zap.Logger
	interval time.Duration
	now      func() time.Time

	mu    sync.Mutex
	kinds map[string]*kindState
}

type kindState struct {
	last       time.Time
	suppressed uint64
}

// New logs through log at most once per interval for each kind (DefaultInterval when
// interval <= 0).
func New(log *zap.Logger, interval time.Duration) *Limiter {
	if interval <= 0 {
		interval = DefaultInterval
	}
	return &Limiter{log: log, interval: interval, now: time.Now, kinds: map[string]*kindState{}}
}

// Warn logs msg at warn level unless a line of the same kind went out within the
// interval; then it only counts it. A logged line carries "suppressed": the number of
// lines of that kind dropped since the previous one. It reports whether it logged.
func (l *Limiter) Warn(kind, msg string, fields ...zap.Field) bool {
	suppressed, ok := l.allow(kind)
	if !ok {
		return false
	}
	if suppressed > 0 {
		fields = append(fields, zap.Uint64("suppressed", suppressed))
	}
	l.log.Warn(msg, fields...)
	return true
}

func (l *Limiter) allow(kind string) (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	st := l.kinds[kind]
	if st == nil {
		if len(l.kinds) >= maxKinds {
			l.prune(now)
		}
		st = &kindState{}
		l.kinds[kind] = st
	} else if now.Sub(st.last) < l.interval {
		st.suppressed++
		return 0, false
	}
	n := st.suppressed
	st.last, st.suppressed = now, 0
	return n, true
}

// prune forgets kinds quiet for a whole interval (their counts are zero or stale), and
// everything if that is not enough.
func (l *Limiter) prune(now time.Time) {
	for k, st := range l.kinds {
		if now.Sub(st.last) >= l.interval {
			delete(l.kinds, k)
		}
	}
	if len(l.kinds) >= maxKinds {
		clear(l.kinds)
	}
}
