//go:build !debughang

package server

import "net/http"

// DebugHang reports whether this build has the debug-only hang endpoint.
const DebugHang = false

func (s *Server) debugRoutes(*http.ServeMux) {}
