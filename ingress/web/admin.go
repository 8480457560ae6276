package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"
)

// Admin actions change a node's state (leave today; kick, drain, reload later). Every
// one is registered through handleAdmin, so they all share one check:
//   - only POST: a GET can be triggered by an <img> tag, and OPTIONS is a browser's
//     preflight, which must not learn that a cross-origin call would work;
//   - never from another origin: no Access-Control-Allow-Origin header, and a request
//     whose Origin (or Sec-Fetch-Site) says it comes from another site is refused, so a
//     page a viewer opens cannot post to the node;
//   - with --api-token, "Authorization: Bearer <token>", compared in constant time;
//     without one, only from a loopback client that names the node by an IP address or
//     "localhost" (a DNS-rebound name that resolves to 127.0.0.1 is refused).

// handleAdmin registers an admin action on every method of path, so that the check,
// not the mux, answers the methods it refuses (OPTIONS included: no preflight of an
// admin path gets CORS).
func (s *Server) handleAdmin(mux *http.ServeMux, path string, h http.Handler) {
	mux.Handle(path, s.admin(h))
}

// admin wraps h with the admin check.
func (s *Server) admin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if status, why := s.adminRefusal(r); status != 0 {
			s.refusals.Warn("admin", "admin request refused", zap.String("peer", r.RemoteAddr),
				zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.String("why", why))
			if status == http.StatusMethodNotAllowed {
				w.Header().Set("Allow", http.MethodPost)
			}
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="peer"`)
			}
			http.Error(w, why, status)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// adminRefusal returns the HTTP status and reason an admin request is refused with,
// or 0 when it may proceed.
func (s *Server) adminRefusal(r *http.Request) (int, string) {
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, "admin actions take POST only"
	}
	if crossSite(r) {
		return http.StatusForbidden, "cross-origin admin request"
	}
	if s.APIToken != "" {
		if !tokenMatches(r.Header.Get("Authorization"), s.APIToken) {
			return http.StatusUnauthorized, "missing or wrong API token"
		}
		return 0, ""
	}
	if !loopbackClient(r) {
		return http.StatusForbidden, "no --api-token is configured: admin actions are accepted from loopback only"
	}
	return 0, ""
}

// crossSite reports a request a browser sent on behalf of another site's page. Origin
// is absent on requests from curl or `peer leave`, and equals the node's own origin on
// a page the node served itself.
func crossSite(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	return err != nil || (u.Scheme != "http" && u.Scheme != "https") || !strings.EqualFold(u.Host, r.Host)
}

// tokenMatches compares "Bearer <token>" with the configured token in constant time;
// hashing both first makes the comparison's time independent of their lengths too.
func tokenMatches(header, token string) bool {
	got, ok := strings.CutPrefix(header, "Bearer ")
	if !ok {
		return false
	}
	a, b := sha256.Sum256([]byte(strings.TrimSpace(got))), sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// loopbackClient reports a client on this host that addressed the node by a loopback
// name: the remote address is a loopback one and the Host header is an IP address or
// "localhost", so a browser page on a rebound domain name does not qualify.
func loopbackClient(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return false
	}
	h := r.Host
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.EqualFold(h, "localhost") || net.ParseIP(h) != nil
}
