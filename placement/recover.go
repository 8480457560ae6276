package placement

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
	"go.uber.org/zap"

	"peer/membership"
)

// openStores opens the raft log (bolt: log and stable store) and the snapshot store
// under dataDir/raft: a running node's (Cluster.Start) and a stopped one's (Recover).
func openStores(dataDir string, noSync bool, hl hclog.Logger) (*raftboltdb.BoltStore, raft.SnapshotStore, error) {
	dir := filepath.Join(dataDir, "raft")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	bolt, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(dir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: time.Second},
		NoSync:      noSync,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("placement: open raft log (is another process using %s?): %w", dir, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hl)
	if err != nil {
		_ = bolt.Close()
		return nil, nil, err
	}
	return bolt, snaps, nil
}

// Voter is one server of the configuration Recover writes: a node name (its raft
// server ID) and its raft address; an empty Addr is taken from the stored configuration
// or the replicated member table.
type Voter struct {
	Name string
	Addr string
}

// Recovery is what Recover did to a data dir.
type Recovery struct {
	Node        string   // the data dir's node
	Index, Term uint64   // the last raft entry kept (the recovered snapshot's)
	Before      []Voter  // the voters of the stored configuration
	Voters      []Voter  // the configuration written
	Lost        []string // nodes recorded as left in the member table
	Streams     int      // assignments kept
}

// Recover rewrites the raft state of a stopped node's data dir after the permanent loss
// of a majority (raft.RecoverCluster, Consul's peers.json): the FSM is rebuilt from the
// snapshot and the log, and saved as a snapshot whose configuration holds only voters
// (default: this node alone); the log is compacted away. Every node of the member table
// that is not among voters is recorded as left, so that the next leader moves its
// streams to live replicas and a replacement may take its name with a new identity key.
// The node's name, identity key and cluster key are left as they are. Each survivor of
// a recovery with several voters must be given the same list.
func Recover(dataDir string, voters []Voter, log *zap.Logger) (Recovery, error) {
	if log == nil {
		log = zap.NewNop()
	}
	var rec Recovery
	b, err := os.ReadFile(filepath.Join(dataDir, "node-id"))
	if err != nil {
		return rec, fmt.Errorf("placement: %s is not a node's data dir: %w", dataDir, err)
	}
	rec.Node = strings.TrimSpace(string(b))
	if _, err := os.Stat(filepath.Join(dataDir, "raft", "raft.db")); err != nil {
		return rec, fmt.Errorf("placement: %s holds no raft state: %w", dataDir, err)
	}
	hl := newHCLog("raft", "warn", log.Named("raft"))
	bolt, snaps, err := openStores(dataDir, false, hl)
	if err != nil {
		return rec, err
	}
	defer bolt.Close()
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(rec.Node)
	rc.Logger = hl
	_, trans := raft.NewInmemTransport("")

	// The stored configuration and member table give the addresses not on the command line.
	probe := newFSM(nil, log)
	before, err := raft.GetConfiguration(rc, probe, bolt, bolt, snaps, trans)
	if err != nil {
		return rec, fmt.Errorf("placement: reading the stored configuration: %w", err)
	}
	addrs := map[string]string{}
	for _, m := range probe.memberList() {
		if m.Raft != "" {
			addrs[m.Name] = m.Raft
		}
	}
	for _, s := range before.Servers {
		addrs[string(s.ID)] = string(s.Address)
		if s.Suffrage == raft.Voter {
			rec.Before = append(rec.Before, Voter{Name: string(s.ID), Addr: string(s.Address)})
		}
	}
	if len(voters) == 0 {
		voters = []Voter{{Name: rec.Node}}
	}
	var conf raft.Configuration
	for _, v := range voters {
		if v.Addr == "" {
			v.Addr = addrs[v.Name]
		}
		if v.Addr == "" {
			return rec, fmt.Errorf("placement: no raft address known for %s: give it as %s=HOST:PORT", v.Name, v.Name)
		}
		if slices.ContainsFunc(rec.Voters, func(o Voter) bool { return o.Name == v.Name }) {
			return rec, fmt.Errorf("placement: voter %s listed twice", v.Name)
		}
		rec.Voters = append(rec.Voters, v)
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(v.Name), Address: raft.ServerAddress(v.Addr)})
	}
	if !slices.ContainsFunc(rec.Voters, func(v Voter) bool { return v.Name == rec.Node }) {
		return rec, fmt.Errorf("placement: this data dir is node %s's, which the voters %v leave out", rec.Node, names(rec.Voters))
	}

	fsm := &recoveringFSM{FSM: newFSM(nil, log), keep: names(rec.Voters)}
	if err := raft.RecoverCluster(rc, fsm, bolt, bolt, snaps, trans, conf); err != nil {
		return rec, fmt.Errorf("placement: recover: %w", err)
	}
	rec.Lost, rec.Streams = fsm.lost, len(fsm.all())
	list, err := snaps.List()
	if err != nil || len(list) == 0 {
		return rec, errors.Join(errors.New("placement: the recovered snapshot is missing"), err)
	}
	rec.Index, rec.Term = list[0].Index, list[0].Term
	log.Info("raft configuration recovered", zap.String("node", rec.Node), zap.Strings("voters", names(rec.Voters)),
		zap.Strings("lost", rec.Lost), zap.Uint64("index", rec.Index), zap.Int("streams", rec.Streams))
	return rec, nil
}

func names(vs []Voter) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Name
	}
	return out
}

// recoveringFSM is the FSM RecoverCluster rebuilds: before the snapshot is taken, the
// member records of the nodes outside the new configuration are marked left.
type recoveringFSM struct {
	*FSM
	keep []string
	lost []string
}

func (r *recoveringFSM) Snapshot() (raft.FSMSnapshot, error) {
	r.mu.Lock()
	r.lost = nil
	for name, m := range r.members {
		if !slices.Contains(r.keep, name) && m.State != string(membership.StateLeft) {
			m.State = string(membership.StateLeft)
			r.members[name] = m
			r.lost = append(r.lost, name)
		}
	}
	r.mu.Unlock()
	sort.Strings(r.lost)
	return r.FSM.Snapshot()
}
