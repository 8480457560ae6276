package placement

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// rpcReq is a request forwarded to the leader over the TLS connections of the raft
// port (ALPN alpnRPC; JSON, one request and one response per line).
type rpcReq struct {
	Op     string `json:"op"` // acquire release edge drain remove
	Stream string `json:"stream,omitempty"`
	Node   string `json:"node,omitempty"`
	Epoch  uint64 `json:"epoch,omitempty"`
	Join   bool   `json:"join,omitempty"`
	// Adopt (acquire): the caller already serves a publisher of Stream, taken while it
	// was degraded. It becomes the master if the stream is free (not placed, or its
	// master gone, or restarted since it took the stream: liveness.restarted) and the
	// caller may hold streams, even when overloaded: moving the publisher would
	// interrupt it. A stream with a live master is returned as it is (the caller then
	// kicks its publisher). A leader that does not know the field
	// treats it as an acquire.
	Adopt bool `json:"adopt,omitempty"`
}

const (
	codeOK        = ""
	codeNotLeader = "not_leader"
	codeStale     = "stale"
	codeNotFound  = "not_found"
	codeError     = "error"
	// codeRefused: the caller may not make this request. The caller retries like an
	// error: a node that just joined or restarted is refused until the leader's gossip
	// view has its identity key.
	codeRefused = "refused"
)

// Bounds of the control RPC: a request line, a response line (an assignment lists
// every edge of a stream), the length of a name, and how long a connection may idle.
const (
	maxRequest  = 16 << 10
	maxResponse = 1 << 20
	maxName     = 1024
	rpcIdle     = 30 * time.Second
)

var errLineTooLong = errors.New("placement: RPC message too long")

type rpcResp struct {
	Code       string      `json:"code,omitempty"`
	Err        string      `json:"err,omitempty"`
	Assignment *Assignment `json:"assignment,omitempty"`
}

func (r rpcResp) err() error {
	switch r.Code {
	case codeOK:
		return nil
	case codeStale:
		return ErrStale
	case codeNotFound:
		return ErrNotFound
	}
	return errors.New("placement: " + r.Code + ": " + r.Err)
}

// readLine reads one newline-terminated message of at most limit bytes.
func readLine(r *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > limit {
			return nil, errLineTooLong
		}
		line = append(line, chunk...)
		if err != bufio.ErrBufferFull {
			return line, err
		}
	}
}

// decodeRPC parses and checks one request line.
func decodeRPC(line []byte) (rpcReq, error) {
	var req rpcReq
	if err := json.Unmarshal(line, &req); err != nil {
		return rpcReq{}, err
	}
	switch req.Op {
	case "acquire", "release", "edge", "drain", "remove":
	default:
		return rpcReq{}, fmt.Errorf("placement: unknown RPC %.32q", req.Op)
	}
	if len(req.Stream) > maxName || len(req.Node) > maxName {
		return rpcReq{}, errors.New("placement: RPC names too long")
	}
	return req, nil
}

// authorize decides whether the node at the other end of a connection may make req.
// The caller must be a member: the member of its certificate's name must gossip the
// same identity key (so a holder of the cluster key that is not a member, or claims a
// member's name with another key, is refused). Every request changes what a node holds
// (acquire, release, edge, drain, remove) and must name the caller itself; only the
// leader acts for other nodes, and it does so without an RPC.
func (c *Cluster) authorize(who caller, req rpcReq) error {
	m, ok := c.mem.Member(who.name)
	if !ok || m.Key != who.key {
		return fmt.Errorf("caller %.64q is not a member with this identity key", who.name)
	}
	if req.Node != who.name {
		return fmt.Errorf("%s for node %.64q from node %.64q: a node may only ask for itself", req.Op, req.Node, who.name)
	}
	return nil
}

// serveRPC runs on an authenticated connection from who.
func (c *Cluster) serveRPC(conn net.Conn, who caller) {
	defer conn.Close()
	in := bufio.NewReader(conn)
	enc := json.NewEncoder(conn)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(rpcIdle))
		line, err := readLine(in, maxRequest)
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				c.refused.Warn("rpc size", "refused RPC: request too long", zap.String("caller", who.name), zap.Int("limit", maxRequest))
			}
			return
		}
		req, err := decodeRPC(line)
		if err != nil {
			c.refused.Warn("rpc decode", "refused RPC: bad request", zap.String("caller", who.name), zap.Error(err))
			return
		}
		var resp rpcResp
		if err := c.authorize(who, req); err != nil {
			c.refused.Warn("rpc auth", "refused RPC", zap.String("caller", who.name), zap.String("op", req.Op),
				zap.String("node", req.Node), zap.String("stream", req.Stream), zap.Error(err))
			resp = rpcResp{Code: codeRefused, Err: err.Error()}
		} else {
			ctx, cancel := context.WithTimeout(c.ctx, c.cfg.RPCTimeout)
			resp = c.handle(ctx, req)
			cancel()
		}
		_ = conn.SetWriteDeadline(time.Now().Add(c.cfg.RPCTimeout))
		if err := enc.Encode(&resp); err != nil {
			return
		}
	}
}

// rpcCall sends req to the node at addr and reads its response, on an idle pooled
// connection when there is one. A pooled connection may have been closed by the other
// end meanwhile (idle timeout, restart): the request is then sent once more on a fresh
// one, which is safe because the closed end never read it.
func (c *Cluster) rpcCall(ctx context.Context, addr string, req rpcReq) (rpcResp, error) {
	select {
	case c.rpcSlots <- struct{}{}:
	case <-ctx.Done():
		return rpcResp{}, ctx.Err()
	}
	defer func() { <-c.rpcSlots }()
	dl := time.Now().Add(c.cfg.RPCTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	for {
		pc, reused := c.rpcConns.get(addr)
		if pc == nil {
			conn, err := c.layer.dial(alpnRPC, addr, time.Second)
			if err != nil {
				return rpcResp{}, err
			}
			pc = &rpcConn{Conn: conn, in: bufio.NewReader(conn)}
		}
		resp, err := pc.exchange(req, dl)
		if err == nil {
			c.rpcConns.put(addr, pc)
			return resp, nil
		}
		pc.Close()
		if !reused || ctx.Err() != nil {
			return rpcResp{}, err
		}
	}
}

// call executes req on the leader (locally if this node leads), retrying
// through leader changes until ctx ends (default deadline 5 s).
func (c *Cluster) call(ctx context.Context, req rpcReq) (rpcResp, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	var lastErr error = ErrNoLeader
	for {
		if c.ctx.Err() != nil {
			return rpcResp{}, ErrClosed
		}
		var resp rpcResp
		var err error
		addr, id := c.raft.LeaderWithID()
		switch {
		case c.raft.State() == raft.Leader:
			resp = c.handle(ctx, req)
		case addr == "":
			err = ErrNoLeader
		default:
			resp, err = c.rpcCall(ctx, string(addr), req)
			if err != nil {
				c.log.Debug("rpc to leader failed", zap.String("leader", string(id)), zap.Error(err))
			}
		}
		if err == nil && resp.Code != codeNotLeader && resp.Code != codeError && resp.Code != codeRefused {
			return resp, resp.err()
		}
		if err != nil {
			lastErr = err
		} else {
			lastErr = resp.err()
		}
		select {
		case <-ctx.Done():
			return rpcResp{}, errors.Join(ErrNoLeader, lastErr, ctx.Err())
		case <-c.ctx.Done():
			return rpcResp{}, ErrClosed
		case <-time.After(30 * time.Millisecond):
		}
	}
}

func assignmentOf(r rpcResp) Assignment {
	if r.Assignment == nil {
		return Assignment{}
	}
	return *r.Assignment
}

// Acquire: a publish for stream arrived at node. Returns the assignment: if
// Master != node the caller relays the publish to Master.
func (c *Cluster) Acquire(ctx context.Context, stream, node string) (Assignment, error) {
	r, err := c.call(ctx, rpcReq{Op: "acquire", Stream: stream, Node: node})
	return assignmentOf(r), err
}

// Adopt claims stream for node, which serves a publisher of it taken while degraded
// (rpcReq.Adopt). The result's Master is node if the claim went through.
func (c *Cluster) Adopt(ctx context.Context, stream, node string) (Assignment, error) {
	r, err := c.call(ctx, rpcReq{Op: "acquire", Stream: stream, Node: node, Adopt: true})
	return assignmentOf(r), err
}

// Release: the publisher of stream left node; the stream is removed if
// epoch is still current (ErrStale otherwise).
func (c *Cluster) Release(ctx context.Context, stream, node string, epoch uint64) error {
	_, err := c.call(ctx, rpcReq{Op: "release", Stream: stream, Node: node, Epoch: epoch})
	return err
}

// JoinEdge records that node serves players of stream (ErrNotFound if the
// stream has no master).
func (c *Cluster) JoinEdge(ctx context.Context, stream, node string) (Assignment, error) {
	r, err := c.call(ctx, rpcReq{Op: "edge", Stream: stream, Node: node, Join: true})
	return assignmentOf(r), err
}

// LeaveEdge: the last player of stream left node.
func (c *Cluster) LeaveEdge(ctx context.Context, stream, node string) error {
	_, err := c.call(ctx, rpcReq{Op: "edge", Stream: stream, Node: node, Join: false})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}
