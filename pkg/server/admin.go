package server

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// serveReload is the admin endpoint behind `handoff reload`: POST reloads
// and answers with the outcome (so `systemctl reload` fails visibly on a
// broken config), GET reports the last outcome.
func (s *Server) serveReload(w http.ResponseWriter, r *http.Request) {
	var res ReloadResult
	status := http.StatusOK
	switch r.Method {
	case http.MethodPost:
		ctx, cancel := context.WithTimeout(r.Context(), 90*time.Second)
		defer cancel()
		var err error
		res, err = s.Reload(ctx)
		if err != nil {
			http.Error(w, "reload: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if res.Error != "" {
			status = http.StatusUnprocessableEntity
		}
	case http.MethodGet, http.MethodHead:
		res, _ = s.LastReload()
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(res)
}
