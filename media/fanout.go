package media

import (
	"math"
	"runtime"
	"sync"

	"go.uber.org/zap"

	"peer/media/flv"
)

// fanOutLocked queues t to every player (a control tag: to every link). Players whose
// goroutine is idle and who have a Sink are claimed into fo instead of woken. A tag that
// wakes no viewer (audio riding with the next video frame, media waiting for a merged
// write) is held by the stream and queued to the viewers with the tag that wakes them:
// each viewer's lock is taken once per write rather than once per tag. Links get every
// tag at once.
func (s *Stream) fanOutLocked(t *flv.Tag, control bool, fo *fanOut) {
	wakeAt := 0 // wake (or claim) the player now
	if t.Type == flv.TypeAudio && s.videoSeq != nil {
		wakeAt = lazyWakeTags
	}
	wakeViewerAt := wakeAt // links never wait for a merged write
	if s.mergingLocked(t) {
		wakeViewerAt = mergeWakeTags
	}
	var viewers []*flv.Tag // what the viewers get now: nothing, or the held tags and t
	if !control {
		if s.held = append(s.held, t); len(s.held) >= wakeViewerAt {
			viewers = s.held
			fo.woke = true
		}
	}
	if viewers == nil && s.links == 0 {
		return
	}
	one := [1]*flv.Tag{t}
	for p := range s.players {
		tags, w := viewers, 0
		if p.link {
			tags, w = one[:], wakeAt
		} else if viewers == nil {
			continue
		}
		dropped, claimed := p.push(tags, s.hub.cfg.MaxOverflows, w, true)
		if dropped {
			s.hub.warn.Warn("player-skip", "player skipped to next keyframe: queue full",
				zap.String("stream", s.Key()), zap.String("peer", p.Remote), zap.String("kind", p.Kind))
		}
		if claimed {
			fo.claim(p)
		}
	}
	if viewers != nil {
		clear(s.held)
		s.held = s.held[:0]
	}
}

// releaseHeldLocked queues the tags the stream holds to its viewers without waking
// them, as they would have had them queued: before a player joins (its start burst has
// them already) and when the publisher leaves (every viewer is kicked next).
func (s *Stream) releaseHeldLocked() {
	if len(s.held) == 0 {
		return
	}
	for p := range s.players {
		if !p.link {
			p.push(s.held, s.hub.cfg.MaxOverflows, math.MaxInt, false)
		}
	}
	clear(s.held)
	s.held = s.held[:0]
}

// mergeWakeTags bounds how many tags a merged write gathers whatever their duration.
const mergeWakeTags = 128

// mergingLocked reports that t waits for the next merged write (MergeWrite, or the
// pacer's window if larger): less than the window of media has passed since the last
// one. Video starts the writes (audio of a stream with video always waits for it);
// config tags never wait.
func (s *Stream) mergingLocked(t *flv.Tag) bool {
	window := max(s.cfg.mergeWrite.Milliseconds(), s.pace.window)
	switch {
	case window <= 0 || isConfig(t):
		return false
	case t.Type == flv.TypeAudio && s.videoSeq != nil:
		return true
	}
	if since := t.Time - s.lastRound; since >= 0 && since < window {
		return true
	}
	s.lastRound = t.Time
	return false
}

// fanOut is a publisher's scratch for writing to players from its own goroutine: one
// nonblocking write per player that keeps up costs no goroutine switch at all, which is
// most of what serving a player costs besides the kernel's work.
type fanOut struct {
	claimed []*Player // First links, other links, then viewers
	links   int       // links at the front of claimed
	firsts  int       // First links at the front of those
	batch   []*flv.Tag
	shards  []fanOut // helpers' scratch when the work is split
	woke    bool     // this round woke the viewers: the stream's pacer times it
}

// claim adds p to the players this round writes. Links go to the front: every hub
// downstream waits for them, and written behind a large audience (in the map's random
// order) a hop would wait for up to a whole round of writes. First links go before the
// other links: in the map's order, half the frames woke a link whose far end had no
// viewers before one whose far end had, which then found the cores taken.
func (fo *fanOut) claim(p *Player) {
	fo.claimed = append(fo.claimed, p)
	if !p.link {
		return
	}
	last := len(fo.claimed) - 1
	fo.claimed[fo.links], fo.claimed[last] = fo.claimed[last], fo.claimed[fo.links]
	fo.links++
	if p.first {
		fo.claimed[fo.firsts], fo.claimed[fo.links-1] = fo.claimed[fo.links-1], fo.claimed[fo.firsts]
		fo.firsts++
	}
}

// fanOutShard is how many claimed players one goroutine writes to; more are split
// over goroutines so a large audience uses every core.
const fanOutShard = 256

// flush writes to the claimed players and forgets them: the links first, from this
// goroutine before any helper competes for a core, then the users.
func (fo *fanOut) flush() {
	all := fo.claimed
	if len(all) == 0 {
		return
	}
	if fo.links > 0 {
		fo.claimed = all[:fo.links]
		fo.writeClaimed()
	}
	users := all[fo.links:]
	n := len(users)
	parts := min((n+fanOutShard-1)/fanOutShard, runtime.GOMAXPROCS(0))
	if parts > 1 {
		if len(fo.shards) < parts-1 {
			fo.shards = make([]fanOut, parts-1)
		}
		var wg sync.WaitGroup
		for i := range parts - 1 {
			sh := &fo.shards[i]
			sh.claimed = users[(i+1)*n/parts : (i+2)*n/parts]
			wg.Go(sh.writeClaimed)
		}
		fo.claimed = users[:n/parts]
		fo.writeClaimed()
		wg.Wait()
	} else {
		fo.claimed = users
		fo.writeClaimed()
	}
	clear(all)
	fo.claimed, fo.links, fo.firsts = all[:0], 0, 0
}

func (fo *fanOut) writeClaimed() {
	var sent, n int
	for _, p := range fo.claimed {
		fo.batch, n = p.flushInline(fo.batch)
		sent += n
	}
	if len(fo.claimed) > 0 { // one update per round: the counter is shared by every shard
		fo.claimed[0].stream.bytesOut.Add(uint64(sent))
	}
}
