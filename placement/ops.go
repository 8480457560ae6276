package placement

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

func respErr(err error) rpcResp {
	if errors.Is(err, errNotLeader) {
		return rpcResp{Code: codeNotLeader}
	}
	return rpcResp{Code: codeError, Err: err.Error()}
}

// handle runs a request on the leader.
func (c *Cluster) handle(ctx context.Context, req rpcReq) rpcResp {
	if c.raft.State() != raft.Leader {
		return rpcResp{Code: codeNotLeader}
	}
	switch req.Op {
	case "acquire", "release", "edge":
		// A copy of a change in flight (the caller's retry after its RPC timed out, the
		// leader still applying the first) waits for it and is answered from the state
		// it left, without an entry of its own.
		leave, ok := c.inflight.enter(ctx, req.key())
		if !ok {
			return respErr(ctx.Err())
		}
		defer leave()
	}
	switch req.Op {
	case "acquire":
		return c.doAcquire(req.Stream, req.Node, req.Adopt)
	case "release":
		// A release whose epoch is applied and gone (a retried RPC, a second releaser)
		// can never apply: epochs are unique log indexes. It is answered without an entry.
		if cur, at := c.fsm.getAt(req.Stream); req.Epoch <= at && (cur == nil || cur.Epoch != req.Epoch) {
			if cur == nil {
				return rpcResp{}
			}
			return rpcResp{Code: codeStale, Assignment: cur}
		}
		res, err := c.apply(command{Op: opCAS, Updates: []update{{Stream: req.Stream, Expect: req.Epoch, ExpectEpoch: true, Delete: true}}})
		if err != nil {
			return respErr(err)
		}
		if res.Applied == 0 {
			if res.Current == nil {
				return rpcResp{} // already gone
			}
			return rpcResp{Code: codeStale, Assignment: res.Current}
		}
		c.log.Info("placement: stream released", zap.String("stream", req.Stream), zap.String("node", req.Node), zap.Uint64("epoch", req.Epoch))
		return rpcResp{}
	case "edge":
		// Joining an edge set the node is in, or leaving one it is not in, changes
		// nothing (a follower asking again before it applied its own join, a retried
		// RPC): answered without an entry.
		if cur := c.fsm.get(req.Stream); cur != nil && slices.Contains(cur.Edges, req.Node) == req.Join {
			return rpcResp{Assignment: cur}
		}
		res, err := c.apply(command{Op: opEdge, Stream: req.Stream, Node: req.Node, Join: req.Join})
		if err != nil {
			return respErr(err)
		}
		if res.Current == nil {
			return rpcResp{Code: codeNotFound}
		}
		if res.Applied > 0 {
			c.log.Info("placement: edge changed", zap.String("stream", req.Stream), zap.String("node", req.Node), zap.Bool("join", req.Join))
		}
		return rpcResp{Assignment: res.Current}
	case "drain":
		return c.doDrain(req.Node)
	case "remove":
		if err := c.raft.RemoveServer(raft.ServerID(req.Node), 0, c.cfg.RPCTimeout).Error(); err != nil {
			return respErr(err)
		}
		c.log.Info("raft: removed leaving server", zap.String("server", req.Node))
		return rpcResp{}
	}
	return rpcResp{Code: codeError, Err: "unknown op " + req.Op}
}

// doAcquire places stream for a publish at node; adopt: see rpcReq.Adopt.
func (c *Cluster) doAcquire(stream, node string, adopt bool) rpcResp {
	for attempt := 0; attempt < 8; attempt++ {
		l := c.snapshotLiveness()
		cur := c.fsm.get(stream)
		// A live master keeps its stream; one restarted since it took it has lost its
		// publisher: a publish there re-acquires it (new epoch), one elsewhere may take it.
		if cur != nil && (cur.Master == node && !l.restarted(cur) || l.holds(cur)) {
			return rpcResp{Assignment: cur}
		}
		master := node
		switch {
		case adopt && l.leaving(node):
			return rpcResp{Assignment: cur} // a leaving node keeps nothing (cur may be nil)
		case adopt && !l.eligible(node):
			// Back from a partition, it reached Raft before gossip: the caller retries.
			return rpcResp{Code: codeError, Err: "adopt: " + node + " is not alive in the leader's gossip view yet"}
		}
		if !adopt && (!l.eligible(node) || l.overloaded(node)) {
			if alt := l.leastLoaded(); alt != "" {
				master = alt
			}
		}
		u := update{Stream: stream, Master: master, NewEpoch: true, MasterInc: l.members[master].Incarnation}
		if cur != nil {
			u.Expect = cur.ModifyIndex
			u.Edges = cur.Edges
			var keep []string
			for _, r := range cur.Replicas {
				if l.eligible(r) {
					keep = append(keep, r)
				}
			}
			u.Replicas = l.pickReplicas(stream, master, keep, c.cfg.Replicas)
		} else {
			u.Replicas = l.pickReplicas(stream, master, nil, c.cfg.Replicas)
		}
		res, err := c.apply(command{Op: opCAS, Updates: []update{u}})
		if err != nil {
			return respErr(err)
		}
		if res.Applied == 1 {
			c.log.Info("placement: stream assigned", zap.String("stream", stream), zap.String("master", master),
				zap.Strings("replicas", res.Current.Replicas), zap.Uint64("epoch", res.Current.Epoch), zap.String("publisher_at", node))
			return rpcResp{Assignment: res.Current}
		}
	}
	return rpcResp{Code: codeError, Err: "acquire: too much contention"}
}

func (c *Cluster) doDrain(node string) rpcResp {
	m, _ := c.mem.Member(node)
	rec, ok := c.fsm.member(node)
	if !ok {
		rec = MemberRecord{Name: node, RTMP: m.RTMP, HTTP: m.HTTP, Raft: m.Raft, Key: m.Key}
	}
	rec.State = "leaving"
	rec.Incarnation = m.Incarnation
	if _, err := c.apply(command{Op: opMembers, Members: []MemberRecord{rec}}); err != nil {
		return respErr(err)
	}
	c.log.Info("placement: draining node", zap.String("node", node))
	for i := 0; i < 5; i++ {
		if err := c.reconcileStreams(); err != nil {
			return respErr(err)
		}
		busy := false
		for _, a := range c.fsm.all() {
			if a.Master == node || slices.Contains(a.Replicas, node) {
				busy = true
			}
		}
		if !busy {
			return rpcResp{}
		}
	}
	return rpcResp{}
}

// inflight holds the changes the leader is applying for its RPCs, by request.
type inflight struct {
	mu   sync.Mutex
	busy map[string]chan struct{} // closed when the request's change is done
}

// enter waits until no request with key is in flight and marks one; leave unmarks it.
// It fails (ok false) when ctx ends first.
func (f *inflight) enter(ctx context.Context, key string) (leave func(), ok bool) {
	for {
		f.mu.Lock()
		done, busy := f.busy[key]
		if !busy {
			if f.busy == nil {
				f.busy = map[string]chan struct{}{}
			}
			done = make(chan struct{})
			f.busy[key] = done
			f.mu.Unlock()
			return func() {
				f.mu.Lock()
				delete(f.busy, key)
				f.mu.Unlock()
				close(done)
			}, true
		}
		f.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return nil, false
		}
	}
}

// key names the change req asks for: copies of one request share it.
func (req rpcReq) key() string {
	return fmt.Sprintf("%s|%s|%s|%d|%t|%t", req.Op, req.Stream, req.Node, req.Epoch, req.Join, req.Adopt)
}
