package media

import (
	"errors"
	"net"
	"net/netip"
	"sync"
)

// ErrTooManyStreams refuses a stream that would take the node past Budget.MaxStreams.
var ErrTooManyStreams = errors.New("node holds its maximum number of streams")

// ErrTooManyPublishes refuses a publish that would take one client address past
// Budget.MaxPublishesPerIP.
var ErrTooManyPublishes = errors.New("too many publishes from this client address")

// Budget is what a node's hubs may hold together (the main hub and the relay hub share
// one): every stream counts, whether published here, relayed, forwarded, pulled or
// waited for by a player; and the live publishes of each client IP. Cluster links
// (publishers named "node:..." or "relay:...") are not a client's and are not counted
// per IP. Zero limits are no limit. The zero value is an unlimited budget.
type Budget struct {
	MaxStreams        int
	MaxPublishesPerIP int

	mu      sync.Mutex
	streams int
	perIP   map[netip.Addr]int
}

// addStream takes a stream from the budget.
func (b *Budget) addStream() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.MaxStreams > 0 && b.streams >= b.MaxStreams {
		return ErrTooManyStreams
	}
	b.streams++
	return nil
}

func (b *Budget) removeStream() {
	b.mu.Lock()
	b.streams--
	b.mu.Unlock()
}

// admits reports whether a new stream (when isNew) and a publish from remote would fit
// now, without taking them.
func (b *Budget) admits(isNew bool, remote string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if isNew && b.MaxStreams > 0 && b.streams >= b.MaxStreams {
		return ErrTooManyStreams
	}
	if ip, ok := clientAddr(remote); ok && b.MaxPublishesPerIP > 0 && b.perIP[ip] >= b.MaxPublishesPerIP {
		return ErrTooManyPublishes
	}
	return nil
}

// clientAddr is the client IP of a remote "ip:port"; false for a cluster link's name.
func clientAddr(remote string) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

// addPublish takes a publish of the client at remote ("ip:port") from the budget; it
// returns the address to give back to removePublish, invalid for a remote that is not
// a client's address.
func (b *Budget) addPublish(remote string) (netip.Addr, error) {
	ip, ok := clientAddr(remote)
	if !ok {
		return netip.Addr{}, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.MaxPublishesPerIP > 0 && b.perIP[ip] >= b.MaxPublishesPerIP {
		return netip.Addr{}, ErrTooManyPublishes
	}
	if b.perIP == nil {
		b.perIP = map[netip.Addr]int{}
	}
	b.perIP[ip]++
	return ip, nil
}

func (b *Budget) removePublish(ip netip.Addr) {
	if !ip.IsValid() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.perIP[ip]--; b.perIP[ip] <= 0 {
		delete(b.perIP, ip)
	}
}

// Streams is how many streams the budget's hubs hold.
func (b *Budget) Streams() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.streams
}
