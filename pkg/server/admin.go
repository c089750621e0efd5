package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/handoff-proxy/handoff/pkg/admin"
	"github.com/handoff-proxy/handoff/pkg/config"
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

// serveUpgrade is the admin endpoint behind `handoff upgrade`: POST starts
// the binary on disk with this process's listeners and answers once it
// serves (200) or failed to (500, this process keeps serving). GET says
// whether the binary on disk replaced the running one, which is how
// `handoff reload` decides to upgrade instead.
func (s *Server) serveUpgrade(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
	case http.MethodGet, http.MethodHead:
		s.serveUpgradeState(w)
		return
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	pid, err := s.Upgrade(ctx)
	w.Header().Set("Content-Type", "application/json")
	res := struct {
		PID   int    `json:"pid,omitempty"`
		Error string `json:"error,omitempty"`
	}{PID: pid}
	status := http.StatusOK
	if err != nil {
		res.Error = err.Error()
		status = http.StatusInternalServerError
		if errors.Is(err, ErrUpgradeInProgress) {
			status = http.StatusConflict
		}
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(res)
}

// UpgradeState is the answer to GET /api/v1/upgrade.
type UpgradeState struct {
	// Supported reports whether this process can upgrade itself.
	Supported bool `json:"supported"`
	// BinaryReplaced reports whether the executable this process runs
	// was replaced on disk since it started.
	BinaryReplaced bool `json:"binary_replaced"`
	// Error is why BinaryReplaced could not be determined.
	Error string `json:"error,omitempty"`
}

func (s *Server) serveUpgradeState(w http.ResponseWriter) {
	st := UpgradeState{Supported: s.opts.Upgrade != nil}
	if s.opts.BinaryReplaced != nil {
		replaced, err := s.opts.BinaryReplaced()
		st.BinaryReplaced = replaced
		if err != nil {
			st.Error = err.Error()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(st)
}

func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", admin.New(s.dashboardOptions(admin.Options{
		Metrics:   s.metrics.Handler(),
		Ready:     func() bool { return !s.shuttingDwn.Load() },
		Upstreams: s.pools,
		Config:    func() *config.Config { return config.Redacted(s.config()) },
		Now:       s.now,
		Logger:    s.log,
	})))
	mux.HandleFunc("/api/v1/reload", s.serveReload)
	mux.HandleFunc("/api/v1/upgrade", s.serveUpgrade)
	mux.HandleFunc("/api/v1/certificates", s.serveCertificates) // acme.go
	mux.HandleFunc("/api/v1/cache", s.cache.serveStats)         // cache
	mux.HandleFunc("/api/v1/cache/purge", s.cache.servePurge)   // cache
	s.debugRoutes(mux)
	return admin.Guard(mux)
}
