package dataplane

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A ticket holds once, for the node it names, until it expires; any change to a signed
// field breaks it.
func TestLinkTickets(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	fresh := func() (*linkAuth, string) {
		return newLinkAuth("k"), LinkQuery("k", linkForward, "live/a", "n1", "n2", 7, false, now)[1:]
	}
	a, q := fresh()
	c, ok := a.parse("live/a", q, "n2", now)
	if !ok || c.err != nil || c.kind != linkForward || c.from != "n1" || c.epoch != 7 || c.cont {
		t.Fatalf("fresh ticket: %+v ok=%v", c, ok)
	}
	if c, _ := a.parse("live/a", q, "n2", now.Add(time.Second)); !errors.Is(c.err, errLinkReplay) {
		t.Fatalf("replay: %v, want errLinkReplay", c.err)
	}

	// Each case spends a fresh ticket of its own.
	cases := []struct {
		name   string
		alter  func(q string) string
		stream string
		self   string
		at     time.Time
		want   error
	}{
		{"another destination", nil, "live/a", "n3", now, errLinkTo},
		{"another stream", nil, "live/b", "n2", now, errLinkSig},
		{"expired", nil, "live/a", "n2", now.Add(linkTTL + time.Second), errLinkExpired},
		{"issued far ahead", nil, "live/a", "n2", now.Add(-linkTTL - linkSkew - time.Second), errLinkExpired},
		{"epoch changed", set("peer_epoch", "8"), "live/a", "n2", now, errLinkSig},
		{"cont added", set("peer_cont", "1"), "live/a", "n2", now, errLinkSig},
		{"sender changed", set("peer_from", "n3"), "live/a", "n2", now, errLinkSig},
		{"expiry pushed", set("peer_exp", "1900000000"), "live/a", "n2", now, errLinkSig},
		{"forged signature", set("peer_sig", strings.Repeat("ab", 32)), "live/a", "n2", now, errLinkSig},
		{"no nonce", set("peer_nonce", ""), "live/a", "n2", now, errLinkSig},
		{"signed with another key", func(string) string {
			return LinkQuery("other", linkForward, "live/a", "n1", "n2", 7, false, now)[1:]
		}, "live/a", "n2", now, errLinkSig},
	}
	for _, tc := range cases {
		a, q := fresh()
		if tc.alter != nil {
			q = tc.alter(q)
		}
		c, ok := a.parse(tc.stream, q, tc.self, tc.at)
		if !ok || !errors.Is(c.err, tc.want) {
			t.Errorf("%s: %v (ok=%v), want %v", tc.name, c.err, ok, tc.want)
		}
	}
	if _, ok := newLinkAuth("k").parse("live/a", "token=abc", "n2", now); ok {
		t.Error("a user's query was read as a link's")
	}
}

func set(key, val string) func(string) string {
	return func(q string) string {
		v, _ := url.ParseQuery(q)
		v.Set(key, val)
		return v.Encode()
	}
}

// The replay cache never holds more than maxNonces: when it is full of live nonces new
// tickets are refused, and expired ones make room again.
func TestLinkNonceCacheBounded(t *testing.T) {
	a := newLinkAuth("k")
	now := time.Unix(1_700_000_000, 0)
	for i := range maxNonces {
		if err := a.spend(strconv.Itoa(i), now.Add(linkTTL), now); err != nil {
			t.Fatalf("nonce %d: %v", i, err)
		}
	}
	if err := a.spend("one more", now.Add(linkTTL), now); !errors.Is(err, errLinkFull) {
		t.Fatalf("full cache: %v, want errLinkFull", err)
	}
	later := now.Add(linkTTL + time.Second)
	if err := a.spend("one more", later.Add(linkTTL), later); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if len(a.seen) != 1 {
		t.Fatalf("cache holds %d nonces after the sweep, want 1", len(a.seen))
	}
}
