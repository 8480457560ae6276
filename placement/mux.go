package placement

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"peer/ingress/vecio"
)

// Wire format of every TCP connection on the raft port:
//
//	client -> server: 'P' <type byte> <16-byte client nonce>
//	with a cluster key:
//	server -> client: <16-byte server nonce> <HMAC-SHA256(k, "s"|type|cn|sn)>
//	client -> server: <HMAC-SHA256(k, "c"|type|cn|sn)>
//
// where k = SHA-256("peer-transport\0" + cluster key). Both sides prove
// knowledge of the key without sending it and each nonce makes replays
// useless. Type 'R' hands the connection to raft's NetworkTransport, type 'C'
// to the internal control RPC. A peer failing the handshake is logged and
// dropped. Without a key only the 3-byte header + nonce is exchanged.
const (
	connRaft = 'R'
	connRPC  = 'C'
	magic    = 'P'
	nonceLen = 16
	macLen   = sha256.Size
)

var errPartitioned = errors.New("placement: partitioned (fault injection)")

func transportKey(clusterKey string) []byte {
	if clusterKey == "" {
		return nil
	}
	s := sha256.Sum256([]byte("peer-transport\x00" + clusterKey))
	return s[:]
}

func handshakeMAC(key []byte, side byte, typ byte, cn, sn []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte{side, typ})
	h.Write(cn)
	h.Write(sn)
	return h.Sum(nil)
}

// muxLayer is a raft.StreamLayer multiplexing raft and RPC on one listener.
type muxLayer struct {
	ln        net.Listener
	advertise net.Addr
	key       []byte
	log       *zap.Logger
	timeout   time.Duration
	rpc       func(net.Conn)

	raftCh  chan net.Conn
	closeCh chan struct{}
	closed  atomic.Bool
	blocked atomic.Bool
	wg      sync.WaitGroup

	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

func newMuxLayer(ln net.Listener, advertise net.Addr, key []byte, log *zap.Logger, rpc func(net.Conn)) *muxLayer {
	m := &muxLayer{ln: ln, advertise: advertise, key: key, log: log, timeout: 2 * time.Second, rpc: rpc,
		raftCh: make(chan net.Conn), closeCh: make(chan struct{}), conns: map[*trackedConn]struct{}{}}
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
		if m.blocked.Load() {
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
	_ = c.SetDeadline(time.Now().Add(m.timeout))
	var hdr [2 + nonceLen]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		_ = c.Close()
		return
	}
	typ := hdr[1]
	if hdr[0] != magic || (typ != connRaft && typ != connRPC) {
		m.log.Warn("refused connection: bad header", zap.String("remote", c.RemoteAddr().String()))
		_ = c.Close()
		return
	}
	if m.key != nil {
		cn := hdr[2:]
		sn := make([]byte, nonceLen)
		_, _ = rand.Read(sn)
		out := append(append([]byte{}, sn...), handshakeMAC(m.key, 's', typ, cn, sn)...)
		if _, err := c.Write(out); err != nil {
			_ = c.Close()
			return
		}
		got := make([]byte, macLen)
		if _, err := io.ReadFull(c, got); err != nil || !hmac.Equal(got, handshakeMAC(m.key, 'c', typ, cn, sn)) {
			m.log.Warn("refused connection: cluster key authentication failed",
				zap.String("remote", c.RemoteAddr().String()), zap.String("kind", string(typ)))
			_ = c.Close()
			return
		}
	}
	_ = c.SetDeadline(time.Time{})
	tc := m.track(c)
	if tc == nil {
		return
	}
	if typ == connRPC {
		m.rpc(tc)
		return
	}
	select {
	case m.raftCh <- tc:
	case <-m.closeCh:
		_ = tc.Close()
	}
}

func (m *muxLayer) dial(typ byte, addr string, timeout time.Duration) (net.Conn, error) {
	if m.blocked.Load() {
		return nil, errPartitioned
	}
	if m.closed.Load() {
		return nil, errors.New("placement: transport closed")
	}
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	hdr := make([]byte, 2+nonceLen)
	hdr[0], hdr[1] = magic, typ
	_, _ = rand.Read(hdr[2:])
	if _, err := c.Write(hdr); err != nil {
		_ = c.Close()
		return nil, err
	}
	if m.key != nil {
		in := make([]byte, nonceLen+macLen)
		if _, err := io.ReadFull(c, in); err != nil {
			_ = c.Close()
			return nil, errors.New("placement: handshake refused by " + addr)
		}
		sn := in[:nonceLen]
		if !hmac.Equal(in[nonceLen:], handshakeMAC(m.key, 's', typ, hdr[2:], sn)) {
			_ = c.Close()
			m.log.Warn("refused server: cluster key authentication failed", zap.String("remote", addr))
			return nil, errors.New("placement: server " + addr + " failed authentication")
		}
		if _, err := c.Write(handshakeMAC(m.key, 'c', typ, hdr[2:], sn)); err != nil {
			_ = c.Close()
			return nil, err
		}
	}
	_ = c.SetDeadline(time.Time{})
	tc := m.track(c)
	if tc == nil {
		return nil, errPartitioned
	}
	return tc, nil
}

// Dial implements raft.StreamLayer.
func (m *muxLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return m.dial(connRaft, string(address), timeout)
}

// Accept implements net.Listener (raft connections only).
func (m *muxLayer) Accept() (net.Conn, error) {
	select {
	case c := <-m.raftCh:
		return c, nil
	case <-m.closeCh:
		return nil, errors.New("placement: transport closed")
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

func (m *muxLayer) setBlocked(b bool) {
	m.blocked.Store(b)
	if b {
		m.closeAll()
	}
}

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
	tc := &trackedConn{Conn: c, m: m, in: vecio.NewReader(c)}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed.Load() || m.blocked.Load() {
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

// Read reads with a raw read(2) (vecio.Reader): an RPC arriving at an idle node then
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
