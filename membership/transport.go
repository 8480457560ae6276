package membership

import (
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

var errPartitioned = errors.New("membership: partitioned (fault injection)")

// blockableTransport drops all outgoing gossip while blocked (fault injection).
type blockableTransport struct {
	*memberlist.NetTransport
	blocked  atomic.Bool
	streamCh chan net.Conn
	stop     chan struct{}
	done     chan struct{}
}

func newBlockable(nt *memberlist.NetTransport) *blockableTransport {
	t := &blockableTransport{NetTransport: nt, streamCh: make(chan net.Conn),
		stop: make(chan struct{}), done: make(chan struct{})}
	go t.filterStreams()
	return t
}

// filterStreams refuses incoming gossip streams while blocked (otherwise
// memberlist's TCP fallback ping would keep a partitioned node alive).
func (t *blockableTransport) filterStreams() {
	defer close(t.done)
	in := t.NetTransport.StreamCh()
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
	err := t.NetTransport.Shutdown()
	select {
	case <-t.stop:
	default:
		close(t.stop)
	}
	<-t.done
	return err
}

var _ memberlist.NodeAwareTransport = (*blockableTransport)(nil)

func (t *blockableTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.blocked.Load() {
		return time.Now(), nil
	}
	return t.NetTransport.WriteTo(b, addr)
}

func (t *blockableTransport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	if t.blocked.Load() {
		return time.Now(), nil
	}
	return t.NetTransport.WriteToAddress(b, addr)
}

func (t *blockableTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.blocked.Load() {
		return nil, errPartitioned
	}
	return t.NetTransport.DialTimeout(addr, timeout)
}

func (t *blockableTransport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.blocked.Load() {
		return nil, errPartitioned
	}
	return t.NetTransport.DialAddressTimeout(addr, timeout)
}
