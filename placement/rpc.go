package placement

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// rpcReq is a request forwarded to the leader over the authenticated 'C'
// connection type of the raft port (JSON, one request/response per line).
type rpcReq struct {
	Op     string `json:"op"` // acquire release edge verify drain remove
	Stream string `json:"stream,omitempty"`
	Node   string `json:"node,omitempty"`
	Epoch  uint64 `json:"epoch,omitempty"`
	Join   bool   `json:"join,omitempty"`
}

const (
	codeOK        = ""
	codeNotLeader = "not_leader"
	codeStale     = "stale"
	codeNotFound  = "not_found"
	codeError     = "error"
)

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

// serveRPC runs on an authenticated connection.
func (c *Cluster) serveRPC(conn net.Conn) {
	defer conn.Close()
	dec := json.NewDecoder(conn)
	enc := json.NewEncoder(conn)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		var req rpcReq
		if err := dec.Decode(&req); err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.RPCTimeout)
		resp := c.handle(ctx, req)
		cancel()
		_ = conn.SetWriteDeadline(time.Now().Add(c.cfg.RPCTimeout))
		if err := enc.Encode(&resp); err != nil {
			return
		}
	}
}

func (c *Cluster) rpcCall(ctx context.Context, addr string, req rpcReq) (rpcResp, error) {
	conn, err := c.layer.dial(connRPC, addr, time.Second)
	if err != nil {
		return rpcResp{}, err
	}
	defer conn.Close()
	dl := time.Now().Add(c.cfg.RPCTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	_ = conn.SetDeadline(dl)
	if err := json.NewEncoder(conn).Encode(&req); err != nil {
		return rpcResp{}, err
	}
	var resp rpcResp
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		return rpcResp{}, err
	}
	return resp, nil
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
		if err == nil && resp.Code != codeNotLeader && resp.Code != codeError {
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

// Verify is the strong fencing check: the leader confirms (after a raft
// barrier) that node is master of stream at epoch. ErrStale if not.
func (c *Cluster) Verify(ctx context.Context, stream, node string, epoch uint64) error {
	_, err := c.call(ctx, rpcReq{Op: "verify", Stream: stream, Node: node, Epoch: epoch})
	return err
}

// Drain moves every stream away from node (used by Leave; also usable by
// an operator for maintenance).
func (c *Cluster) Drain(ctx context.Context, node string) error {
	_, err := c.call(ctx, rpcReq{Op: "drain", Node: node})
	return err
}
