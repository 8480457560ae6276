package dataplane

import "sync/atomic"

// Link kinds, as /metrics labels them.
const (
	LinkRelay   = "relay"   // a publish this node relays to the stream's master
	LinkForward = "forward" // this master's copy of a stream sent to a replica
	LinkPull    = "pull"    // an edge pulling a stream from its master or a replica
)

// LinkStats counts one kind of cluster link on this node.
type LinkStats struct {
	Kind string
	// Up links carry media; Connecting links exist but are dialing, retrying or
	// waiting for an origin.
	Up, Connecting int64
	// Connects counts the times a link of this kind came up (a reconnect counts again).
	Connects uint64
}

// linkGauge keeps a LinkStats with atomics: links change state a few times per
// connection, never per packet.
type linkGauge struct {
	links, up atomic.Int64
	connects  atomic.Uint64
}

// run counts a link for as long as it lives; call the returned func when it ends.
func (g *linkGauge) run() (end func()) {
	g.links.Add(1)
	return func() { g.links.Add(-1) }
}

// connected counts a link as up; call the returned func when it goes down.
func (g *linkGauge) connected() (down func()) {
	g.up.Add(1)
	g.connects.Add(1)
	return func() { g.up.Add(-1) }
}

func (g *linkGauge) stats(kind string) LinkStats {
	up := g.up.Load()
	return LinkStats{Kind: kind, Up: up, Connecting: max(g.links.Load()-up, 0), Connects: g.connects.Load()}
}

// linkGauges holds a gauge per link kind.
type linkGauges struct{ relay, forward, pull linkGauge }

// LinkStats reports this node's cluster links by kind, for /metrics.
func (r *Router) LinkStats() []LinkStats {
	return []LinkStats{r.gauges.relay.stats(LinkRelay), r.gauges.forward.stats(LinkForward), r.gauges.pull.stats(LinkPull)}
}
