package web

import (
	"net/http"
	"strconv"

	"go.uber.org/zap"
)

// kick serves POST /api/v1/clients/{id}/kick, an admin action (admin.go): it
// disconnects one client of this node.
func (s *Server) kick(w http.ResponseWriter, r *http.Request) {
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
