// Package bus is the subscriber queue of the control plane: membership delivers its
// gossip events and placement its FSM and contact changes through it. Publishers never
// wait for subscribers; subscribers get every value in publish order, one call at a
// time, from the bus's own goroutine. A leaf: it imports only the standard library.
package bus

import "sync"

// subscribers is a registry of subscribers, called in the order they subscribed.
type subscribers[T any] struct {
	mu   sync.Mutex
	next int
	subs []sub[T]
}

type sub[T any] struct {
	id int
	fn func(T)
}

// Add registers fn; cancel removes it (a call already under way still completes).
func (s *subscribers[T]) Add(fn func(T)) (cancel func()) {
	s.mu.Lock()
	id := s.next
	s.next++
	s.subs = append(s.subs, sub[T]{id, fn})
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, e := range s.subs {
			if e.id == id {
				s.subs = append(s.subs[:i:i], s.subs[i+1:]...)
				return
			}
		}
	}
}

func (s *subscribers[T]) list() []func(T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]func(T), len(s.subs))
	for i, e := range s.subs {
		out[i] = e.fn
	}
	return out
}

// Bus queues published values and delivers them to its subscribers from one goroutine,
// started by the first Publish. The zero value is ready to use.
type Bus[T any] struct {
	subscribers[T]

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []T
	running bool
	stopped bool
	done    chan struct{}
}

// Publish queues vs for delivery to the subscribers of the moment they are delivered.
// It never blocks on a subscriber. After Close it does nothing.
func (b *Bus[T]) Publish(vs ...T) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return
	}
	if !b.running {
		b.running = true
		b.cond = sync.NewCond(&b.mu)
		b.done = make(chan struct{})
		go b.run()
	}
	b.queue = append(b.queue, vs...)
	b.cond.Signal()
}

// Close stops delivery (what is still queued is dropped) and waits for the delivery
// goroutine to end. It must not be called from a subscriber.
func (b *Bus[T]) Close() {
	b.mu.Lock()
	b.stopped = true
	running := b.running
	if running {
		b.cond.Broadcast()
	}
	b.mu.Unlock()
	if running {
		<-b.done
	}
}

func (b *Bus[T]) run() {
	defer close(b.done)
	for {
		b.mu.Lock()
		for len(b.queue) == 0 && !b.stopped {
			b.cond.Wait()
		}
		if b.stopped {
			b.mu.Unlock()
			return
		}
		q := b.queue
		b.queue = nil
		b.mu.Unlock()
		subs := b.list()
		for _, v := range q {
			for _, fn := range subs {
				fn(v)
			}
		}
	}
}
