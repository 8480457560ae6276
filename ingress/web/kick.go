package web

import (
	"net"
	"net/http"
	"net/url"
	"strconv"

	"go.uber.org/zap"
)

// kick serves POST /api/v1/clients/{id}/kick: it disconnects one client of this node.
//
// Until the shared admin check (--api-token) guards it, it is accepted only from
// loopback and never from another site's page: a browser sends a cross-site POST
// without asking first, so the Origin (or Sec-Fetch-Site) of the request is checked.
func (s *Server) kick(w http.ResponseWriter, r *http.Request) {
	if !adminRequest(r) {
		s.refusals.Warn("admin", "admin action refused: not from loopback or cross-origin",
			zap.String("peer", r.RemoteAddr), zap.String("path", r.URL.Path))
		http.Error(w, "admin actions are accepted from loopback only, never cross-origin", http.StatusForbidden)
		return
	}
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		http.Error(w, "bad client id", http.StatusBadRequest)
		return
	}
	if !s.Hub.KickClient(id) {
		http.Error(w, "no such client", http.StatusNotFound)
		return
	}
	s.Log.Info("client kicked by an operator", zap.Uint64("client", id), zap.String("by", r.RemoteAddr))
	writeJSON(w, map[string]any{"code": 0, "kicked": id})
}

// adminRequest: from loopback, and not sent by a page of another origin.
func adminRequest(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return false
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	return true
}
