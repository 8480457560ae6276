package limit

import (
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestLimiterRefusesAndLogsRateLimited(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	l := New(2).WithLog("max_connections", zap.New(core))
	if !l.Acquire("a") || !l.Acquire("b") {
		t.Fatal("a slot under the limit was refused")
	}
	for range 1000 {
		if l.Acquire("c") {
			t.Fatal("a slot over the limit was granted")
		}
	}
	if l.Refused() != 1000 || l.Active() != 2 {
		t.Fatalf("refused %d, active %d", l.Refused(), l.Active())
	}
	if logs.Len() != 1 || !strings.Contains(logs.All()[0].Message, "max_connections") {
		t.Fatalf("%d log lines for 1000 refusals: %v", logs.Len(), logs.All())
	}
	l.Release()
	if !l.Acquire("d") {
		t.Fatal("a released slot was not reusable")
	}
}

type closer struct {
	mu     sync.Mutex
	closed bool
}

func (c *closer) Close() error { c.mu.Lock(); c.closed = true; c.mu.Unlock(); return nil }
func (c *closer) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// A full pool closes the connection idle longest; busy connections are never closed.
func TestIdlePoolClosesTheLongestIdle(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	p := NewIdlePool("http idle", 2, zap.New(core))
	a, b, c, busy := &closer{}, &closer{}, &closer{}, &closer{}
	p.Idle(busy)
	p.Busy(busy) // it sent its request
	p.Idle(a)
	p.Idle(b)
	p.Idle(a) // idle again after a request: now the newest
	p.Idle(c)
	if !b.isClosed() || a.isClosed() || c.isClosed() || busy.isClosed() {
		t.Fatalf("closed: a %v b %v c %v busy %v; want only b", a.isClosed(), b.isClosed(), c.isClosed(), busy.isClosed())
	}
	if p.Len() != 2 || p.Evicted() != 1 {
		t.Fatalf("len %d, evicted %d", p.Len(), p.Evicted())
	}
	for range 100 {
		p.Idle(&closer{})
	}
	if p.Len() != 2 || logs.Len() != 1 {
		t.Fatalf("len %d, %d log lines for 101 evictions", p.Len(), logs.Len())
	}
}
