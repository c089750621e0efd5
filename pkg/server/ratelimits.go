package server

import (
	"time"

	"github.com/handoff-proxy/handoff/pkg/admin"
)

// The dashboard lists the topLimitedKeys keys denied most within
// limitedWindow: the ones being limited now, not last week's.
const (
	topLimitedKeys = 32
	limitedWindow  = 5 * time.Minute
	shownLimited   = 10
)

func (s *Server) rateLimitInfos() []admin.RateLimitInfo {
	top := s.policy.top.List(limitedWindow, shownLimited)
	out := make([]admin.RateLimitInfo, 0, len(top))
	for _, e := range top {
		out = append(out, admin.RateLimitInfo{Route: e.Route, Key: e.Key, Denied: e.Denied, Last: e.Last})
	}
	return out
}
