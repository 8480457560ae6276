package limit

import (
	"container/list"
	"io"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"peer/conf/ratelog"
)

// IdlePool bounds the connections a listener keeps open while they do nothing the
// node has accepted yet: just accepted, still sending their request's header, or
// kept alive between requests. Such connections cost memory and a file descriptor but
// are free to open, so past the cap the one idle longest is closed to make room,
// rather than refusing the newcomer: a flood of idle or slowly-talking connections
// (slowloris) then only ever holds the cap, and a client that sends its request at
// once (an operator's curl, a player) still gets through.
type IdlePool struct {
	name    string
	max     int
	log     *ratelog.Limiter
	evicted atomic.Uint64

	mu    sync.Mutex
	order *list.List // oldest first
	elems map[io.Closer]*list.Element
}

// NewIdlePool keeps at most n idle connections (at least 1).
func NewIdlePool(name string, n int, log *zap.Logger) *IdlePool {
	return &IdlePool{name: name, max: max(n, 1), log: ratelog.New(log, 0), order: list.New(), elems: map[io.Closer]*list.Element{}}
}

// Idle records that c waits for (more of) a request, closing the longest-idle
// connection when the pool is full.
func (p *IdlePool) Idle(c io.Closer) {
	p.mu.Lock()
	if e, ok := p.elems[c]; ok {
		p.order.MoveToBack(e)
		p.mu.Unlock()
		return
	}
	var victim io.Closer
	if p.order.Len() >= p.max {
		victim = p.order.Remove(p.order.Front()).(io.Closer)
		delete(p.elems, victim)
	}
	p.elems[c] = p.order.PushBack(c)
	p.mu.Unlock()
	if victim != nil {
		p.evicted.Add(1)
		p.log.Warn(p.name, "closed the longest-idle connection: "+p.name+" reached", zap.Int("max", p.max))
		victim.Close()
	}
}

// Busy removes c from the pool: it is serving a request, became a media session or
// closed.
func (p *IdlePool) Busy(c io.Closer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.elems[c]; ok {
		p.order.Remove(e)
		delete(p.elems, c)
	}
}

// Len is the number of idle connections held.
func (p *IdlePool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.order.Len()
}

// Evicted counts connections closed to make room.
func (p *IdlePool) Evicted() uint64 { return p.evicted.Load() }
