// Package placement is the cluster's control plane: it decides and replicates, per
// live stream, which node is the master, which nodes hold slave replicas and which
// nodes are edges. It runs hashicorp/raft (bolt log under the data dir) on every node;
// the raft leader reconciles the raft configuration with gossip membership (package
// membership) and moves streams away from dead or leaving nodes.
//
// The files follow the concerns, in the leader-only reconcile shape of nomad's
// leader.go:
//
//	cluster.go            the Cluster, its accessors, shutdown and leave
//	raft.go               start-up: identity, raft port and transport, stores, raft, gossip
//	mux.go, tls.go        the raft port: raft and RPC multiplexed on mutually authenticated TLS
//	fsm.go                the replicated state and its commands (the raft wire format)
//	changes.go            local subscribers of FSM and contact changes
//	leader.go             leadership and the leader loop (apply, announce, reconcile rounds)
//	reconcile_streams.go  moving streams off gone nodes
//	reconcile_servers.go  the raft configuration: voters, nonvoters, removals
//	reconcile_members.go  the replicated member table
//	replication.go        a follower back from an outage: its replication started afresh
//	liveness.go           who may hold streams, load scores, replica choice
//	ops.go, rpc.go        the leader's operations and the RPC that forwards them
//	rpc_pool.go           the RPC client's idle connections
//	fence.go              contact with the leader: the fencing of stale masters
//	view.go, stats.go     the cluster view and figures for the API and /metrics
//
// It imports membership, membership/bus, conf/ratelog and media/netio (leaves and the
// gossip layer), never the data plane (placement/dataplane), media or ingress.
package placement
