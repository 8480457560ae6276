package placement

import (
	"bufio"
	"encoding/json"
	"net"
	"sync"
	"time"
)

// rpcConn is a client connection of the control RPC.
type rpcConn struct {
	net.Conn
	in   *bufio.Reader
	idle time.Time // when it was put back in the pool
}

func (pc *rpcConn) exchange(req rpcReq, deadline time.Time) (rpcResp, error) {
	_ = pc.SetDeadline(deadline)
	if err := json.NewEncoder(pc).Encode(&req); err != nil {
		return rpcResp{}, err
	}
	line, err := readLine(pc.in, maxResponse)
	if err != nil {
		return rpcResp{}, err
	}
	var resp rpcResp
	if err := json.Unmarshal(line, &resp); err != nil {
		return rpcResp{}, err
	}
	return resp, nil
}

// rpcPool keeps a few idle RPC connections per address (in practice: the leader's).
// A TLS handshake costs about a millisecond of CPU on each side; a request on an open
// connection a tenth of that (BenchmarkRPCRoundTrip).
type rpcPool struct {
	mu     sync.Mutex
	idle   map[string][]*rpcConn
	closed bool
}

const (
	// maxRPCInFlight bounds a node's RPCs to the leader at once. A burst (a thousand
	// publishers leaving, players arriving on an edge) then queues for the pooled
	// connections rather than opening a TLS handshake each: hundreds at once starved
	// a 2-core host's raft heartbeats into elections, and the leader's handshake limit
	// (maxHandshakes) refused them anyway.
	maxRPCInFlight = 8
	maxIdleRPC     = maxRPCInFlight // per address: every slot's connection is kept
	rpcIdleUse     = rpcIdle / 3    // reuse only well before the server's idle timeout
)

func (p *rpcPool) get(addr string) (*rpcConn, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for list := p.idle[addr]; len(list) > 0; list = p.idle[addr] {
		pc := list[len(list)-1]
		p.idle[addr] = list[:len(list)-1]
		if time.Since(pc.idle) < rpcIdleUse {
			return pc, true
		}
		pc.Close()
	}
	return nil, false
}

func (p *rpcPool) put(addr string, pc *rpcConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle[addr]) >= maxIdleRPC {
		pc.Close()
		return
	}
	if p.idle == nil {
		p.idle = map[string][]*rpcConn{}
	}
	// Drop connections to former leaders that went stale.
	for a, list := range p.idle {
		if a != addr && len(list) > 0 && time.Since(list[len(list)-1].idle) >= rpcIdleUse {
			for _, old := range list {
				old.Close()
			}
			delete(p.idle, a)
		}
	}
	pc.idle = time.Now()
	p.idle[addr] = append(p.idle[addr], pc)
}

// close closes every idle connection; later puts close theirs.
func (p *rpcPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, list := range p.idle {
		for _, pc := range list {
			pc.Close()
		}
	}
	p.idle = nil
}
