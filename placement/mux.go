package placement

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"peer/conf/ratelog"
	"peer/media/netio"
)

func dialTCP(addr string, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, timeout)
}

var errTransportClosed = errors.New("placement: transport closed")

// maxHandshakes bounds the connections of the raft port that have not finished their
// TLS handshake: a flood of idle or junk connections is closed beyond it instead of each
// holding a goroutine for the handshake timeout.
const maxHandshakes = 64

// muxLayer is a raft.StreamLayer multiplexing raft and RPC on one listener; every
// connection is mutually authenticated TLS (see tls.go).
type muxLayer struct {
	ln        net.Listener
	advertise net.Addr
	server    *tls.Config
	client    *tls.Config
	refused   *ratelog.Limiter // refused connections, logged at a bounded rate
	timeout   time.Duration
	rpc       func(net.Conn, caller)
	dialTCP   func(addr string, timeout time.Duration) (net.Conn, error)

	raftCh     chan net.Conn
	closeCh    chan struct{}
	closed     atomic.Bool
	handshakes chan struct{} // semaphore of handshakes in progress
	wg         sync.WaitGroup

	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

// newMuxLayer serves ln; dial (nil: net.DialTimeout over TCP) opens its outgoing connections.
func newMuxLayer(ln net.Listener, advertise net.Addr, server, client *tls.Config, log *zap.Logger, rpc func(net.Conn, caller),
	dial func(addr string, timeout time.Duration) (net.Conn, error)) *muxLayer {
	if dial == nil {
		dial = dialTCP
	}
	m := &muxLayer{ln: ln, advertise: advertise, server: server, client: client, refused: ratelog.New(log, 0),
		timeout: 2 * time.Second, rpc: rpc, dialTCP: dial,
		raftCh: make(chan net.Conn), closeCh: make(chan struct{}),
		handshakes: make(chan struct{}, maxHandshakes), conns: map[*trackedConn]struct{}{}}
	m.wg.Add(1)
	go m.acceptLoop()
	return m
}

func (m *muxLayer) acceptLoop() {
	defer m.wg.Done()
	for {
		c, err := m.ln.Accept()
		if err != nil {
			if m.closed.Load() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		select {
		case m.handshakes <- struct{}{}:
		default:
			m.refused.Warn("handshakes", "refused connection: too many handshakes in progress",
				zap.String("remote", c.RemoteAddr().String()), zap.Int("limit", maxHandshakes))
			_ = c.Close()
			continue
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.serverHandshake(c)
		}()
	}
}

func (m *muxLayer) serverHandshake(c net.Conn) {
	tc := m.track(c)
	if tc == nil {
		<-m.handshakes
		return
	}
	tlc := tls.Server(tc, m.server)
	_ = c.SetDeadline(time.Now().Add(m.timeout))
	err := tlc.Handshake()
	<-m.handshakes
	if err != nil {
		m.refused.Warn("tls", "refused connection: no valid cluster certificate (a node without the cluster key?)",
			zap.String("remote", c.RemoteAddr().String()), zap.Error(err))
		_ = tlc.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	st := tlc.ConnectionState()
	who, err := callerOf(st.PeerCertificates[0])
	if err != nil {
		_ = tlc.Close()
		return
	}
	if st.NegotiatedProtocol == alpnRPC {
		m.rpc(tlc, who)
		return
	}
	if st.NegotiatedProtocol != alpnRaft {
		m.refused.Warn("alpn", "refused connection: no protocol named", zap.String("remote", c.RemoteAddr().String()))
		_ = tlc.Close()
		return
	}
	select {
	case m.raftCh <- tlc:
	case <-m.closeCh:
		_ = tlc.Close()
	}
}

// dial opens an authenticated connection carrying proto (alpnRaft or alpnRPC).
func (m *muxLayer) dial(proto, addr string, timeout time.Duration) (net.Conn, error) {
	if m.closed.Load() {
		return nil, errTransportClosed
	}
	c, err := m.dialTCP(addr, timeout)
	if err != nil {
		return nil, err
	}
	tc := m.track(c)
	if tc == nil {
		return nil, errTransportClosed
	}
	cfg := m.client.Clone()
	cfg.NextProtos = []string{proto}
	tlc := tls.Client(tc, cfg)
	_ = c.SetDeadline(time.Now().Add(timeout))
	if err := tlc.Handshake(); err != nil {
		_ = tlc.Close()
		return nil, fmt.Errorf("placement: TLS with %s (another cluster key?): %w", addr, err)
	}
	_ = c.SetDeadline(time.Time{})
	return tlc, nil
}

// Dial implements raft.StreamLayer.
func (m *muxLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return m.dial(alpnRaft, string(address), timeout)
}

// Accept implements net.Listener (raft connections only).
func (m *muxLayer) Accept() (net.Conn, error) {
	select {
	case c := <-m.raftCh:
		return c, nil
	case <-m.closeCh:
		return nil, errTransportClosed
	}
}

// Close implements net.Listener.
func (m *muxLayer) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	close(m.closeCh)
	err := m.ln.Close()
	m.closeAll()
	return err
}

// wait for the accept loop and handshakes/RPC handlers to finish.
func (m *muxLayer) wait() { m.wg.Wait() }

// Addr implements net.Listener; raft uses it as the local address.
func (m *muxLayer) Addr() net.Addr { return m.advertise }

func (m *muxLayer) closeAll() {
	m.mu.Lock()
	cs := make([]*trackedConn, 0, len(m.conns))
	for c := range m.conns {
		cs = append(cs, c)
	}
	m.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
	}
}

func (m *muxLayer) track(c net.Conn) *trackedConn {
	tc := &trackedConn{Conn: c, m: m, in: netio.NewReader(c)}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed.Load() {
		_ = c.Close()
		return nil
	}
	m.conns[tc] = struct{}{}
	return tc
}

type trackedConn struct {
	net.Conn
	m    *muxLayer
	in   io.Reader
	once sync.Once
}

// Read reads with a raw read(2) (netio.Reader): an RPC arriving at an idle node then
// does not wake the runtime's sysmon, which polls every 20 µs for a millisecond or more
// once woken. Raft's heartbeats and AppendEntries arrive dozens of times a second (perf
// of an idle node: sysmon's sleeps were the largest share of its scheduling).
func (c *trackedConn) Read(p []byte) (int, error) { return c.in.Read(p) }

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.m.mu.Lock()
		delete(c.m.conns, c)
		c.m.mu.Unlock()
	})
	return c.Conn.Close()
}
