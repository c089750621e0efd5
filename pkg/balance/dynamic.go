package balance

import (
	"sync/atomic"

	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// dynamic is the Selector of a pool whose targets follow DNS: it builds
// the strategy again whenever the pool publishes a new list. Lists change
// rarely (a DNS answer changed), so a strategy's state (a round-robin
// position, a hash ring) starting over then costs nothing that matters,
// and an unchanged list costs one atomic load and a comparison per pick.
type dynamic struct {
	pool  *upstream.Pool
	build func([]*upstream.Target) Selector
	cur   atomic.Pointer[built]
}

// built is a strategy and the list it was built for.
type built struct {
	targets []*upstream.Target
	sel     Selector // nil when targets is empty
}

func newDynamic(p *upstream.Pool, build func([]*upstream.Target) Selector) *dynamic {
	return &dynamic{pool: p, build: build}
}

// Select picks from the pool's current list; nil when it is empty.
func (d *dynamic) Select(k Key, eligible func(*upstream.Target) bool) *upstream.Target {
	ts := d.pool.Targets()
	b := d.cur.Load()
	if b == nil || !sameList(b.targets, ts) {
		nb := &built{targets: ts}
		if len(ts) > 0 {
			nb.sel = d.build(ts)
		}
		// Two callers may build at once; either result is right.
		d.cur.Store(nb)
		b = nb
	}
	if b.sel == nil {
		return nil
	}
	return b.sel.Select(k, eligible)
}

// sameList reports whether a and b are the same published list: a pool
// never modifies a list, it publishes a new one.
func sameList(a, b []*upstream.Target) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}
