package server

import "github.com/handoff-proxy/handoff/pkg/admin"

func (s *Server) rateLimitInfos() []admin.RateLimitInfo { return []admin.RateLimitInfo{} }
