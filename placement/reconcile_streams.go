package placement

import (
	"slices"

	"go.uber.org/zap"

	"peer/membership"
)

// reconcileStreams moves masters off gone nodes (promoting a live replica,
// new epoch), replaces gone replicas and drops gone edges.
func (c *Cluster) reconcileStreams() error {
	l := c.snapshotLiveness()
	var ups []update
	for _, a := range c.fsm.all() {
		u, ok := c.reconcileStream(l, a)
		if !ok {
			continue
		}
		ups = append(ups, u)
		// Account the move so the next streams in this round spread out.
		if !u.Delete && u.Master != a.Master {
			l.counts[a.Master]--
			l.counts[u.Master]++
		}
	}
	for len(ups) > 0 {
		n := min(len(ups), 256)
		if _, err := c.apply(command{Op: opCAS, Updates: ups[:n]}); err != nil {
			return err
		}
		ups = ups[n:]
	}
	return nil
}

// reconcileStream is the update one stream needs, if any: a new master in place of a
// gone one (a live replica, new epoch; none left: the stream is dropped), gone replicas
// replaced, gone edges dropped.
func (c *Cluster) reconcileStream(l *liveness, a Assignment) (update, bool) {
	grace := c.cfg.FailoverGrace
	master := a.Master
	newEpoch := false
	var reps []string
	for _, r := range a.Replicas {
		if !l.gone(r, grace) && r != master {
			reps = append(reps, r)
		}
	}
	if l.gone(master, grace) {
		newEpoch = true
		master = ""
		for i, r := range reps {
			if l.eligible(r) {
				master = r
				reps = slices.Delete(slices.Clone(reps), i, i+1)
				break
			}
		}
		if master == "" {
			// No replica can take over: the stream is lost until its
			// publisher reconnects (Acquire recreates it).
			c.log.Info("placement: stream dropped, no live replica", zap.String("stream", a.Stream), zap.String("old_master", a.Master))
			return update{Stream: a.Stream, Expect: a.ModifyIndex, Delete: true}, true
		}
	}
	var keep []string
	for _, r := range reps {
		if l.eligible(r) || l.members[r].State == membership.StateDead { // dead within grace: keep for now
			keep = append(keep, r)
		}
	}
	if len(keep) < c.cfg.Replicas {
		keep = l.pickReplicas(a.Stream, master, keep, c.cfg.Replicas)
	}
	edges := slices.DeleteFunc(slices.Clone(a.Edges), func(e string) bool { return l.gone(e, grace) })
	if master == a.Master && slices.Equal(keep, a.Replicas) && slices.Equal(edges, a.Edges) {
		return update{}, false
	}
	if newEpoch {
		c.log.Info("placement: master moved", zap.String("stream", a.Stream), zap.String("from", a.Master),
			zap.String("to", master), zap.Strings("replicas", keep))
	}
	u := update{Stream: a.Stream, Expect: a.ModifyIndex, Master: master, Replicas: keep, Edges: edges, NewEpoch: newEpoch}
	if newEpoch {
		u.MasterInc = l.members[master].Incarnation
	}
	return u, true
}
