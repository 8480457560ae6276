package placement

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
)

var errPartitioned = errors.New("placement: partitioned (fault injection)")

// partition is the Network of a test node: setPartitioned cuts the node off (gossip
// out, raft and RPC both ways) and heals it.
type partition struct {
	blocked atomic.Bool
	dials   atomic.Int64 // outgoing raft and RPC connections
	mu      sync.Mutex
	conns   map[*partConn]struct{}
}

func newPartition() *partition { return &partition{conns: map[*partConn]struct{}{}} }

// setPartitioned cuts c off or heals it; c must have been started with a partition.
func setPartitioned(c *Cluster, b bool) { c.cfg.Network.(*partition).set(b) }

func (p *partition) set(b bool) {
	p.blocked.Store(b)
	if !b {
		return
	}
	p.mu.Lock()
	cs := make([]*partConn, 0, len(p.conns))
	for c := range p.conns {
		cs = append(cs, c)
	}
	p.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
	}
}

func (p *partition) track(c net.Conn) (net.Conn, error) {
	pc := &partConn{Conn: c, p: p}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.blocked.Load() {
		_ = c.Close()
		return nil, errPartitioned
	}
	p.conns[pc] = struct{}{}
	return pc, nil
}

func (p *partition) Dial(addr string, timeout time.Duration) (net.Conn, error) {
	p.dials.Add(1)
	if p.blocked.Load() {
		return nil, errPartitioned
	}
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	return p.track(c)
}

func (p *partition) Listener(ln net.Listener) net.Listener { return &partListener{Listener: ln, p: p} }

func (p *partition) Gossip(t memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
	return newBlockable(t, &p.blocked)
}

// partListener refuses connections while partitioned.
type partListener struct {
	net.Listener
	p *partition
}

func (l *partListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if pc, err := l.p.track(c); err == nil {
			return pc, nil
		}
	}
}

// partConn is a connection the partition closes when it cuts the node off.
type partConn struct {
	net.Conn
	p    *partition
	once sync.Once
}

// SyscallConn keeps the raw reads of the raft port (netio.Reader) on the test path.
func (c *partConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}

func (c *partConn) Close() error {
	c.once.Do(func() {
		c.p.mu.Lock()
		delete(c.p.conns, c)
		c.p.mu.Unlock()
	})
	return c.Conn.Close()
}

// blockableTransport drops all outgoing gossip while blocked.
type blockableTransport struct {
	memberlist.NodeAwareTransport
	blocked  *atomic.Bool
	streamCh chan net.Conn
	stop     chan struct{}
	done     chan struct{}
}

func newBlockable(nt memberlist.NodeAwareTransport, blocked *atomic.Bool) *blockableTransport {
	t := &blockableTransport{NodeAwareTransport: nt, blocked: blocked, streamCh: make(chan net.Conn),
		stop: make(chan struct{}), done: make(chan struct{})}
	go t.filterStreams()
	return t
}

// filterStreams refuses incoming gossip streams while blocked (otherwise
// memberlist's TCP fallback ping would keep a partitioned node alive).
func (t *blockableTransport) filterStreams() {
	defer close(t.done)
	in := t.NodeAwareTransport.StreamCh()
	for {
		select {
		case <-t.stop:
			return
		case c := <-in:
			if t.blocked.Load() {
				_ = c.Close()
				continue
			}
			select {
			case t.streamCh <- c:
			case <-t.stop:
				_ = c.Close()
				return
			}
		}
	}
}

func (t *blockableTransport) StreamCh() <-chan net.Conn { return t.streamCh }

func (t *blockableTransport) Shutdown() error {
	err := t.NodeAwareTransport.Shutdown()
	select {
	case <-t.stop:
	default:
		close(t.stop)
	}
	<-t.done
	return err
}

func (t *blockableTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.blocked.Load() {
		return time.Now(), nil
	}
	return t.NodeAwareTransport.WriteTo(b, addr)
}

func (t *blockableTransport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	if t.blocked.Load() {
		return time.Now(), nil
	}
	return t.NodeAwareTransport.WriteToAddress(b, addr)
}

func (t *blockableTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.blocked.Load() {
		return nil, errPartitioned
	}
	return t.NodeAwareTransport.DialTimeout(addr, timeout)
}

func (t *blockableTransport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.blocked.Load() {
		return nil, errPartitioned
	}
	return t.NodeAwareTransport.DialAddressTimeout(addr, timeout)
}
