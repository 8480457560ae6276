package route

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
)

// Link kinds, carried in the stream query of node-to-node RTMP connections.
const (
	linkRelay   = "relay"   // an ingress publishes a user's stream to its master
	linkForward = "forward" // a master publishes a copy to a replica
	linkPull    = "pull"    // an edge plays a stream from its master or a replica
)

// linkAuth signs and checks node-to-node links with the cluster key, so that only
// members can publish feeds into a node or pull streams as internal players.
type linkAuth struct{ key []byte }

func (a linkAuth) sig(kind, stream, from string) string {
	m := hmac.New(sha256.New, append([]byte("peer-link\x00"), a.key...))
	m.Write([]byte(kind + "\x00" + stream + "\x00" + from))
	return hex.EncodeToString(m.Sum(nil))
}

// query is the stream-name suffix a link sends; cont marks a relay re-pointed to a new
// master, which continues the stream rather than starting it.
func (a linkAuth) query(kind, stream, from string, cont bool) string {
	v := url.Values{"peer_link": {kind}, "peer_from": {from}, "peer_sig": {a.sig(kind, stream, from)}}
	if cont {
		v.Set("peer_cont", "1")
	}
	return "?" + v.Encode()
}

// link reads a link's claim from a query: ok is false when the query is not a link's;
// valid reports whether its signature holds.
type linkClaim struct {
	kind, from string
	cont       bool
	valid      bool
}

func (a linkAuth) parse(stream, query string) (linkClaim, bool) {
	v, err := url.ParseQuery(query)
	if err != nil || v.Get("peer_link") == "" {
		return linkClaim{}, false
	}
	c := linkClaim{kind: v.Get("peer_link"), from: v.Get("peer_from"), cont: v.Get("peer_cont") == "1"}
	c.valid = hmac.Equal([]byte(a.sig(c.kind, stream, c.from)), []byte(v.Get("peer_sig")))
	return c, true
}
