package web

import (
	"net"
	"sync"
	"time"
)

// hlsViewerWindow is how long an HLS player counts after its last playlist request: a
// live player asks again every target duration (--hls-fragment, 2 s by default).
const hlsViewerWindow = 10 * time.Second

// maxHLSViewers bounds the tracker's memory whatever clients do; past it new addresses
// are not counted until old ones expire, so the count is then a lower bound.
const maxHLSViewers = 10000

// hlsViewers counts HLS players, which hold no connection of their own to count: the
// distinct client addresses that asked for a stream's playlist within the window
// (players behind one NAT address count as one).
type hlsViewers struct {
	mu    sync.Mutex
	seen  map[viewerKey]time.Time
	ended []viewerKey // expired but not yet reported by expire (at most maxHLSViewers)
}

type viewerKey struct{ stream, ip string }

// note records a playlist request for stream from remote (host:port); isNew reports a
// viewer not seen within the window (a new HLS session, for the on_play hook).
func (v *hlsViewers) note(stream, remote string, now time.Time) (isNew bool) {
	ip, _, err := net.SplitHostPort(remote)
	if err != nil {
		ip = remote
	}
	k := viewerKey{stream, ip}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seen == nil {
		v.seen = map[viewerKey]time.Time{}
	}
	_, known := v.seen[k]
	if !known && len(v.seen) >= maxHLSViewers {
		v.pruneLocked(now)
		if len(v.seen) >= maxHLSViewers {
			return true
		}
	}
	v.seen[k] = now
	return !known
}

// forget drops a viewer (one admission refused).
func (v *hlsViewers) forget(stream, remote string) {
	ip, _, err := net.SplitHostPort(remote)
	if err != nil {
		ip = remote
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.seen, viewerKey{stream, ip})
}

// expire forgets the viewers whose window has passed and returns them (their HLS
// sessions ended: on_stop), with those pruned since the last call.
func (v *hlsViewers) expire(now time.Time) []viewerKey {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.pruneLocked(now)
	ended := v.ended
	v.ended = nil
	return ended
}

// counts returns the HLS players per stream key, forgetting expired ones.
func (v *hlsViewers) counts(now time.Time) map[string]int {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.pruneLocked(now)
	out := map[string]int{}
	for k := range v.seen {
		out[k.stream]++
	}
	return out
}

// pruneLocked forgets expired viewers and keeps them for expire, at most
// maxHLSViewers of them (a node with no hooks never asks).
func (v *hlsViewers) pruneLocked(now time.Time) {
	for k, t := range v.seen {
		if now.Sub(t) > hlsViewerWindow {
			delete(v.seen, k)
			if len(v.ended) < maxHLSViewers {
				v.ended = append(v.ended, k)
			}
		}
	}
}
