package server

import (
	"context"
	"sync"
	"time"
)

// firstResolveTimeout bounds the lookups a generation waits for before it
// serves. A pool whose first lookup fails serves what it was built with
// (host names dialed by name) and keeps trying in the background.
const firstResolveTimeout = 2 * time.Second

// startResolvers looks up the targets of every pool given by host name or
// SRV record once, concurrently, then re-resolves each pool on a goroutine
// the generation owns. Pools of IP literals start nothing.
func (g *generation) startResolvers() {
	ctx, cancel := context.WithTimeout(g.ctx, firstResolveTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, p := range g.pools {
		if !p.Resolving() {
			continue
		}
		wg.Go(func() { _ = p.Resolve(ctx, g.log) }) // logged inside
	}
	wg.Wait()
	for _, p := range g.pools {
		if p.Resolving() {
			g.goFunc("resolve "+p.Name, func(ctx context.Context) { p.RunResolver(ctx, g.log) })
		}
	}
}
