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

// hlsViewers tracks HLS players, which hold no connection of their own: a viewer is a
// client address that asked for a stream's playlist within the window (players behind
// one NAT address count as one). A viewer is a session, for the access log and the hooks,
// from its first playlist request until it stops asking.
type hlsViewers struct {
	mu    sync.Mutex
	seen  map[viewerKey]*hlsViewer
	ended []endedViewer // expired but not yet reported by expire (at most maxHLSViewers)
}

type viewerKey struct{ stream, ip string }

type hlsViewer struct {
	first, last time.Time
	bytes       uint64 // segment bytes sent
}

// endedViewer is a viewer whose session ended, with what it got.
type endedViewer struct {
	viewerKey
	hlsViewer
}

func viewerOf(stream, remote string) viewerKey {
	ip, _, err := net.SplitHostPort(remote)
	if err != nil {
		ip = remote
	}
	return viewerKey{stream, ip}
}

// note records a playlist request for stream from remote (host:port); isNew reports a
// viewer not seen within the window (a new HLS session: on_play, an access line).
func (v *hlsViewers) note(stream, remote string, now time.Time) (isNew bool) {
	k := viewerOf(stream, remote)
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seen == nil {
		v.seen = map[viewerKey]*hlsViewer{}
	}
	if w := v.seen[k]; w != nil {
		w.last = now
		return false
	}
	if len(v.seen) >= maxHLSViewers {
		v.pruneLocked(now)
		if len(v.seen) >= maxHLSViewers {
			return true
		}
	}
	v.seen[k] = &hlsViewer{first: now, last: now}
	return true
}

// sent counts segment bytes for a viewer.
func (v *hlsViewers) sent(stream, remote string, n int) {
	k := viewerOf(stream, remote)
	v.mu.Lock()
	defer v.mu.Unlock()
	if w := v.seen[k]; w != nil {
		w.bytes += uint64(n)
	}
}

// forget drops a viewer (one admission refused).
func (v *hlsViewers) forget(stream, remote string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.seen, viewerOf(stream, remote))
}

// expire forgets the viewers whose window has passed and returns them (their HLS
// sessions ended), with those pruned since the last call.
func (v *hlsViewers) expire(now time.Time) []endedViewer {
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
// maxHLSViewers of them.
func (v *hlsViewers) pruneLocked(now time.Time) {
	for k, w := range v.seen {
		if now.Sub(w.last) > hlsViewerWindow {
			delete(v.seen, k)
			if len(v.ended) < maxHLSViewers {
				v.ended = append(v.ended, endedViewer{k, *w})
			}
		}
	}
}
