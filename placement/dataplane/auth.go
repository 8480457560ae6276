package dataplane

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Link kinds, carried in the stream query of node-to-node RTMP connections.
const (
	linkRelay   = "relay"   // an ingress publishes a user's stream to its master
	linkForward = "forward" // a master publishes a copy to a replica
	linkPull    = "pull"    // an edge plays a stream from its master or a replica
)

// Link tickets. A node-to-node link carries a ticket in its stream query, signed with a
// key derived from the cluster key:
//
//	peer_link  kind (relay, forward, pull)      peer_from  the sending node
//	peer_to    the node it is meant for         peer_epoch the stream's epoch it acts on
//	peer_cont  1: a relay re-pointed mid-stream peer_exp   expiry, unix seconds
//	peer_nonce 16 random bytes (hex)            peer_sig   HMAC-SHA256 over all of these and the stream
//
// The receiver refuses a ticket that is badly signed, meant for another node, expired
// or issued too far ahead, or seen before (nonces are kept until they expire), and the
// router refuses one for an older epoch than its view of the stream. A captured ticket
// is therefore good for one connection to one node for at most linkTTL, and never after
// the stream changed master. Every link attempt signs a new ticket.
//
// A keyless cluster (loopback only, see docs/security.md) signs with the key derived from
// the empty string: anyone on the host can forge its links, which is why a keyless
// cluster refuses to bind a non-loopback address.
const (
	linkTTL = 30 * time.Second
	// linkSkew is how far ahead of the receiver's clock a sender's may run.
	linkSkew = 30 * time.Second
	// maxNonces bounds the replay cache. Only validly signed tickets enter it, so only a
	// holder of the cluster key could fill it; when full of unexpired nonces new links
	// are refused rather than let the cache grow.
	maxNonces = 16384
)

// Reasons a ticket is refused.
var (
	errLinkSig     = errors.New("bad signature")
	errLinkTo      = errors.New("meant for another node")
	errLinkExpired = errors.New("expired or issued too far ahead")
	errLinkReplay  = errors.New("replayed")
	errLinkFull    = errors.New("too many links at once")
)

// linkAuth signs and checks node-to-node links, so that only members can publish feeds
// into a node or pull streams as internal players.
type linkAuth struct {
	key []byte

	mu   sync.Mutex
	seen map[string]time.Time // nonce -> expiry
}

func newLinkAuth(clusterKey string) *linkAuth {
	return &linkAuth{key: linkKey(clusterKey), seen: map[string]time.Time{}}
}

func linkKey(clusterKey string) []byte {
	k := sha256.Sum256([]byte("peer-link\x00" + clusterKey))
	return k[:]
}

// ticket is what a link claims.
type ticket struct {
	kind, stream, from, to string
	epoch                  uint64
	cont                   bool
	exp                    int64
	nonce                  string
}

func (t ticket) sig(key []byte) string {
	m := hmac.New(sha256.New, key)
	cont := "0"
	if t.cont {
		cont = "1"
	}
	for _, f := range []string{t.kind, t.stream, t.from, t.to, strconv.FormatUint(t.epoch, 10), cont,
		strconv.FormatInt(t.exp, 10), t.nonce} {
		m.Write([]byte(f))
		m.Write([]byte{0})
	}
	return hex.EncodeToString(m.Sum(nil))
}

func (t ticket) query(key []byte) string {
	v := url.Values{"peer_link": {t.kind}, "peer_from": {t.from}, "peer_to": {t.to},
		"peer_epoch": {strconv.FormatUint(t.epoch, 10)}, "peer_exp": {strconv.FormatInt(t.exp, 10)},
		"peer_nonce": {t.nonce}, "peer_sig": {t.sig(key)}}
	if t.cont {
		v.Set("peer_cont", "1")
	}
	return "?" + v.Encode()
}

// LinkQuery returns the stream-name suffix of a link of kind for stream, from one node
// to another, signed with clusterKey at now. Nodes call it for every link attempt; it is
// exported for the attack tests, which replay and alter real tickets.
func LinkQuery(clusterKey, kind, stream, from, to string, epoch uint64, cont bool, now time.Time) string {
	return newTicket(kind, stream, from, to, epoch, cont, now).query(linkKey(clusterKey))
}

// isLinkQuery reports whether query carries a link ticket (peer_link=...).
func isLinkQuery(query string) bool {
	v, err := url.ParseQuery(query)
	return err == nil && v.Get("peer_link") != ""
}

func newTicket(kind, stream, from, to string, epoch uint64, cont bool, now time.Time) ticket {
	var n [16]byte
	_, _ = rand.Read(n[:])
	return ticket{kind: kind, stream: stream, from: from, to: to, epoch: epoch, cont: cont,
		exp: now.Add(linkTTL).Unix(), nonce: hex.EncodeToString(n[:])}
}

// query signs a ticket for one link attempt now.
func (a *linkAuth) query(kind, stream, from, to string, epoch uint64, cont bool) string {
	return newTicket(kind, stream, from, to, epoch, cont, time.Now()).query(a.key)
}

// linkClaim is a link's ticket as read from its query; err says why it is refused
// (nil: signed for this node, fresh and not seen before).
type linkClaim struct {
	kind, from string
	epoch      uint64
	cont       bool
	err        error
}

// parse reads the ticket in a query meant for node self: ok is false when the query is
// not a link's. A valid ticket's nonce is spent: the same query is refused next time.
func (a *linkAuth) parse(stream, query, self string, now time.Time) (c linkClaim, ok bool) {
	v, err := url.ParseQuery(query)
	if err != nil || v.Get("peer_link") == "" {
		return linkClaim{}, false
	}
	t := ticket{kind: v.Get("peer_link"), stream: stream, from: v.Get("peer_from"), to: v.Get("peer_to"),
		cont: v.Get("peer_cont") == "1", nonce: v.Get("peer_nonce")}
	c = linkClaim{kind: t.kind, from: t.from, cont: t.cont}
	var e1, e2 error
	t.epoch, e1 = strconv.ParseUint(v.Get("peer_epoch"), 10, 64)
	t.exp, e2 = strconv.ParseInt(v.Get("peer_exp"), 10, 64)
	c.epoch = t.epoch
	switch {
	case e1 != nil || e2 != nil || len(t.nonce) != 32 || !hmac.Equal([]byte(t.sig(a.key)), []byte(v.Get("peer_sig"))):
		c.err = errLinkSig
	case t.to != self:
		c.err = errLinkTo
	case now.Unix() > t.exp || time.Unix(t.exp, 0).After(now.Add(linkTTL+linkSkew)):
		c.err = errLinkExpired
	default:
		c.err = a.spend(t.nonce, time.Unix(t.exp, 0), now)
	}
	return c, true
}

// spend records a nonce until its ticket expires; a nonce seen before is a replay.
func (a *linkAuth) spend(nonce string, exp, now time.Time) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, dup := a.seen[nonce]; dup {
		return errLinkReplay
	}
	if len(a.seen) >= maxNonces {
		for n, e := range a.seen {
			if now.After(e) {
				delete(a.seen, n)
			}
		}
		if len(a.seen) >= maxNonces {
			return errLinkFull
		}
	}
	a.seen[nonce] = exp
	return nil
}
