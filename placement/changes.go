package placement

import (
	"sync"
)

// OnChange registers fn for local FSM changes and contact changes; calls
// come in order from one goroutine. The returned func unsubscribes.
func (c *Cluster) OnChange(fn func(Change)) (cancel func()) { return c.changes.Add(fn) }

// Watch is OnChange as a channel (buffered; a slow reader slows delivery to
// other subscribers). cancel must be called to release it.
func (c *Cluster) Watch() (<-chan Change, func()) {
	ch := make(chan Change, 256)
	done := make(chan struct{})
	var once sync.Once
	unsub := c.OnChange(func(ch2 Change) {
		select {
		case ch <- ch2:
		case <-done:
		case <-c.ctx.Done():
		}
	})
	return ch, func() { once.Do(func() { unsub(); close(done) }) }
}

func (c *Cluster) enqueue(ch []Change) { c.changes.Publish(ch...) }
