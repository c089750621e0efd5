//go:build debughang

package server

import (
	"net/http"
)

// DebugHang reports whether this build has the debug-only hang endpoint.
// Only the integration tests build it (-tags debughang): it proves that a
// wedged main loop stops the watchdog pings and systemd restarts handoff.
const DebugHang = true

func (s *Server) debugRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /debug/hang", func(w http.ResponseWriter, r *http.Request) {
		s.log.Warn("debug: wedging the main loop on request; the watchdog should fire")
		go func() {
			s.execCh <- func() { select {} }
		}()
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte("main loop wedged\n"))
	})
}
