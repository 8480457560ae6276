package placement

import (
	"sort"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"peer/membership"
)

// reconcileServers makes at most one raft configuration change; it returns
// whether it changed something. Order: fix addresses, add newcomers as
// nonvoters, promote healthy nonvoters up to the desired odd voter count,
// remove failed nonvoters, remove failed voters (only while at least
// MinQuorum healthy voters remain: protects against false positives of the
// fast failure detector), demote surplus voters. Each step either makes its change
// (or fails trying) and ends the round, or passes to the next.
func (c *Cluster) reconcileServers() (bool, error) {
	v, err := c.serverView()
	if err != nil {
		return false, err
	}
	for _, step := range []func(*servers) (bool, error){
		c.fixAddresses, c.addNewcomers, c.promote, c.removeFailedNonvoter, c.removeFailedVoter, c.demoteSurplus,
	} {
		if changed, err := step(v); changed || err != nil {
			return changed, err
		}
	}
	return false, nil
}

// servers is the leader's picture of the raft configuration for one reconcile round:
// the configuration, who is healthy and who failed by gossip, by suffrage.
type servers struct {
	conf        raft.Configuration
	l           *liveness
	now         time.Time
	self        raft.ServerID
	leaderSince time.Time
	grace       time.Duration // DeadServerGrace
	byAddr      map[raft.ServerAddress]raft.Server
	inConf      map[raft.ServerID]raft.Server

	hv, fv, hnv, fnv []raft.Server // healthy and failed voters, healthy and failed nonvoters
	voters           int
	desired          int // desired voter count
}

func (c *Cluster) serverView() (*servers, error) {
	cf := c.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return nil, err
	}
	l := c.snapshotLiveness()
	c.lmu.Lock()
	leaderSince := c.leaderSince
	c.lmu.Unlock()
	v := &servers{conf: cf.Configuration(), l: l, now: l.now, self: raft.ServerID(c.name), leaderSince: leaderSince,
		grace: c.cfg.DeadServerGrace, byAddr: map[raft.ServerAddress]raft.Server{}, inConf: map[raft.ServerID]raft.Server{}}
	for _, s := range v.conf.Servers {
		v.byAddr[s.Address] = s
		v.inConf[s.ID] = s
	}
	for _, s := range v.conf.Servers {
		voter := s.Suffrage == raft.Voter
		if voter {
			v.voters++
		}
		switch {
		case voter && v.healthy(s):
			v.hv = append(v.hv, s)
		case voter && v.failed(s):
			v.fv = append(v.fv, s)
		case !voter && v.healthy(s):
			v.hnv = append(v.hnv, s)
		case !voter && v.failed(s):
			v.fnv = append(v.fnv, s)
		}
	}
	v.desired = desiredVoters(len(v.hv)+len(v.hnv), c.cfg.MaxVoters)
	return v, nil
}

func (v *servers) healthy(s raft.Server) bool { return s.ID == v.self || v.l.serving(string(s.ID)) }

func (v *servers) failed(s raft.Server) bool {
	if s.ID == v.self {
		return false
	}
	m, ok := v.l.members[string(s.ID)]
	if !ok {
		// Never seen in gossip since we lead: give it time to show up.
		return v.now.Sub(v.leaderSince) >= 3*v.grace
	}
	return m.State == membership.StateLeft ||
		(m.State == membership.StateDead && v.now.Sub(m.Since) >= v.grace)
}

// serverChange waits for a configuration change and logs it.
func (c *Cluster) serverChange(what string, id raft.ServerID, f raft.IndexFuture) (bool, error) {
	if err := f.Error(); err != nil {
		return false, err
	}
	c.log.Info("raft: "+what, zap.String("server", string(id)))
	return true, nil
}

// freeAddr removes a failed/unhealthy server squatting addr, wanted by id. It returns
// whether it changed the configuration and whether addr is free for id.
func (c *Cluster) freeAddr(v *servers, addr raft.ServerAddress, id raft.ServerID) (changed, free bool, err error) {
	o, taken := v.byAddr[addr]
	if !taken || o.ID == id {
		return false, true, nil
	}
	if v.healthy(o) {
		c.log.Warn("raft: address claimed by two live servers", zap.String("addr", string(addr)),
			zap.String("a", string(o.ID)), zap.String("b", string(id)))
		return false, false, nil
	}
	changed, err = c.serverChange("removed server holding a reused address", o.ID, c.raft.RemoveServer(o.ID, 0, c.cfg.RPCTimeout))
	return changed, false, err
}

// fixAddresses (step 1): address changes of known servers (restart at a new address).
func (c *Cluster) fixAddresses(v *servers) (bool, error) {
	for _, s := range v.conf.Servers {
		m, ok := v.l.members[string(s.ID)]
		if s.ID == v.self || !ok || m.State != membership.StateAlive || m.Raft == "" || raft.ServerAddress(m.Raft) == s.Address {
			continue
		}
		if ch, free, err := c.freeAddr(v, raft.ServerAddress(m.Raft), s.ID); ch || err != nil || !free {
			if ch || err != nil {
				return ch, err
			}
			continue
		}
		// AddNonvoter on an existing server only updates its address.
		return c.serverChange("updated address to "+m.Raft, s.ID, c.raft.AddNonvoter(s.ID, raft.ServerAddress(m.Raft), 0, c.cfg.RPCTimeout))
	}
	return false, nil
}

// addNewcomers (step 2): serving members not in the configuration join as nonvoters.
func (c *Cluster) addNewcomers(v *servers) (bool, error) {
	var names []string
	for n := range v.l.members {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		m := v.l.members[n]
		id := raft.ServerID(n)
		if _, ok := v.inConf[id]; ok || !v.l.serving(n) || m.Raft == "" {
			continue
		}
		if ch, free, err := c.freeAddr(v, raft.ServerAddress(m.Raft), id); ch || err != nil || !free {
			if ch || err != nil {
				return ch, err
			}
			continue
		}
		c.lmu.Lock()
		c.nonvoterSince[id] = v.now
		c.lmu.Unlock()
		return c.serverChange("added nonvoter", id, c.raft.AddNonvoter(id, raft.ServerAddress(m.Raft), 0, c.cfg.RPCTimeout))
	}
	return false, nil
}

// promote (step 3): a healthy nonvoter that has been one for PromoteAfter becomes a
// voter, while voters are fewer than desired and promotionSafe allows it. Healthy here
// is also what raft sees: a server whose heartbeats from this leader fail now is
// neither a candidate nor counted as a healthy voter. Gossip takes 0.5-0.7 s to call a
// killed node dead, raft's heartbeats fail at once: with the witness killed, then 0.4 s
// later a nonvoter, the leader promoted the dead nonvoter (gossip still had it alive,
// and with one voter down promotionSafe counts the candidate), leaving two live voters
// of four and no leader for as long as the two stayed down (chaos witness fault,
// TestPromotionSkipsDeadNonvoter).
func (c *Cluster) promote(v *servers) (bool, error) {
	healthy := 0
	for _, s := range v.hv {
		if !c.heartbeatsFailing(s.ID) {
			healthy++
		}
	}
	if healthy >= v.desired || !promotionSafe(v.voters, healthy, v.desired, c.cfg.MinQuorum) {
		return false, nil
	}
	sort.Slice(v.hnv, func(i, j int) bool { return v.hnv[i].ID < v.hnv[j].ID })
	for _, s := range v.hnv {
		if c.heartbeatsFailing(s.ID) {
			continue
		}
		c.lmu.Lock()
		since, ok := c.nonvoterSince[s.ID]
		if !ok {
			c.nonvoterSince[s.ID] = v.now
			since = v.now
		}
		c.lmu.Unlock()
		if v.now.Sub(since) < c.cfg.PromoteAfter {
			continue
		}
		return c.serverChange("promoted to voter", s.ID, c.raft.AddVoter(s.ID, s.Address, 0, c.cfg.RPCTimeout))
	}
	return false, nil
}

// removeFailedNonvoter (step 4).
func (c *Cluster) removeFailedNonvoter(v *servers) (bool, error) {
	if len(v.fnv) == 0 {
		return false, nil
	}
	s := v.fnv[0]
	return c.serverChange("removed failed nonvoter", s.ID, c.raft.RemoveServer(s.ID, 0, c.cfg.RPCTimeout))
}

// removeFailedVoter (step 5): only while MinQuorum healthy voters remain.
func (c *Cluster) removeFailedVoter(v *servers) (bool, error) {
	if len(v.fv) == 0 || len(v.hv) < c.cfg.MinQuorum {
		return false, nil
	}
	s := v.fv[0]
	return c.serverChange("removed failed voter", s.ID, c.raft.RemoveServer(s.ID, 0, c.cfg.RPCTimeout))
}

// demoteSurplus (step 6): voters beyond the desired count become nonvoters, only when
// no voter is failed or pending removal; never this node.
func (c *Cluster) demoteSurplus(v *servers) (bool, error) {
	if len(v.hv) != v.voters || len(v.hv) <= v.desired {
		return false, nil
	}
	sort.Slice(v.hv, func(i, j int) bool { return v.hv[i].ID > v.hv[j].ID })
	for _, s := range v.hv {
		if s.ID != v.self {
			c.lmu.Lock()
			c.nonvoterSince[s.ID] = v.now
			c.lmu.Unlock()
			return c.serverChange("demoted surplus voter", s.ID, c.raft.DemoteVoter(s.ID, 0, c.cfg.RPCTimeout))
		}
	}
	return false, nil
}

// promotionSafe: may a nonvoter become a voter, given the configuration's voters, how
// many of them are healthy now, and the desired voter count? A promotion enlarges the
// quorum at once, and both the candidate and a "healthy" voter may be dead without
// gossip knowing yet (killed a moment ago). make sim showed it: with 1 or 2 of 5 voters
// dead, the leader promoted a just-killed nonvoter, leaving 3 live voters of 6 and no
// leader ever again. So a promotion (a) only fills the voter set up to the desired
// count: a dead voter is removed first (step 5), not outvoted, and (b) the healthy voters
// alone must form the new quorum. The exception is a configuration whose failed voters
// cannot be removed (fewer than minQuorum healthy voters: step 5 waits): there
// promoting is the only way back to redundancy, and the candidate is counted.
func promotionSafe(voters, healthyVoters, desired, minQuorum int) bool {
	quorum := (voters+1)/2 + 1
	if healthyVoters < minQuorum {
		return healthyVoters+1 >= quorum
	}
	return voters < desired && healthyVoters >= quorum
}

// desiredVoters: 1 below 3 servers, 3 from 3, 5 from 7, 7 from 11 … capped
// at MaxVoters (always odd).
func desiredVoters(healthy, maxVoters int) int {
	k := 1
	for next := 3; next <= maxVoters; next += 2 {
		if healthy >= 2*next-3 {
			k = next
		}
	}
	return k
}
