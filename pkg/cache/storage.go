package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/handoff-proxy/handoff/pkg/cache/store"
)

// variantKey is where one variant of key lives under a variant index.
func variantKey(key string, ix *variantIndex, h Header) string {
	return key + "\x01" + ix.Epoch + "\x01" + SecondaryKey(ix.Names, h)
}

// lookup finds the stored response for a request: the entry at key, or
// through the variant index at key the variant matching the request's
// header (RFC 9111 §4.1). varies reports that an index was found (a miss
// is then a vary-miss).
func (c *Cache) lookup(ctx context.Context, key string, h Header) (e *Entry, varies bool) {
	d, ok := c.get(ctx, key)
	if !ok {
		return nil, false
	}
	if d.entry != nil {
		return d.entry, false
	}
	v, ok := c.get(ctx, variantKey(key, d.index, h))
	if !ok || v.entry == nil {
		return nil, true
	}
	return v.entry, true
}

func (c *Cache) get(ctx context.Context, key string) (decoded, bool) {
	b, _, err := c.o.Store.Get(ctx, key)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			c.stats.errors.Add(1)
		}
		if errors.Unwrap(err) != nil && !errors.Is(err, store.ErrNotFound) {
			c.o.Logger.Debug("cache store get", "err", err)
		}
		return decoded{}, false
	}
	d, err := decodeValue(b)
	if err != nil {
		// Garbage under our prefix (another program, a torn write): a miss.
		c.o.Logger.Debug("cache store value ignored", "key", key, "err", err)
		return decoded{}, false
	}
	return d, true
}

// save stores e as the answer to a request with header reqHdr, for keep.
func (c *Cache) save(ctx context.Context, key string, reqHdr Header, e *Entry, keep time.Duration) {
	if keep <= 0 {
		return
	}
	names, _ := VaryNames(e.Header)
	target := key
	if len(names) > 0 {
		// Reuse the index (and so its other variants) when the Vary names
		// are unchanged; a new index gets a new epoch (RFC 9111 §4.1).
		var ix *variantIndex
		if d, ok := c.get(ctx, key); ok && d.index != nil && slices.Equal(d.index.Names, names) {
			ix = d.index
		} else {
			var b [6]byte
			_, _ = rand.Read(b[:])
			ix = &variantIndex{Names: names, Epoch: hex.EncodeToString(b[:])}
		}
		// The index outlives its variants a little so no variant is
		// orphaned early; it is tiny.
		if err := c.o.Store.Set(ctx, key, encodeIndex(*ix), keep+time.Minute); err != nil {
			c.stats.errors.Add(1)
		}
		target = variantKey(key, ix, reqHdr)
	}
	if err := c.o.Store.Set(ctx, target, EncodeEntry(e), keep); err != nil {
		c.stats.errors.Add(1)
	}
}

// invalidate drops key (and so all its variants) in every tier.
func (c *Cache) invalidate(ctx context.Context, keys ...string) {
	if err := c.o.Store.Delete(ctx, keys...); err != nil {
		c.stats.errors.Add(1)
	}
}

// storedHeader copies the fields of a response that may be stored: not
// hop-by-hop, not per request, not named by private= or no-cache=
// (RFC 9111 §5.2.2.4, §5.2.2.7: those must not be reused; dropping them
// is the simplest way to honour that).
func (c *Cache) storedHeader(h http.Header, cc Directives) http.Header {
	out := make(http.Header, len(h))
	for k, vs := range h {
		if c.noStore[k] {
			continue
		}
		out[k] = slices.Clone(vs)
	}
	for _, f := range cc.PrivateFields {
		out.Del(f)
	}
	for _, f := range cc.NoCacheFields {
		out.Del(f)
	}
	return out
}

// stored is the decision input for entry e under route policy p, now.
func (c *Cache) stored(e *Entry, p Policy) Stored {
	cc := ResponseDirectives(e.Header)
	life, _ := Freshness(Response{Status: e.Status, Header: e.Header}, cc, p)
	return Stored{Lifetime: life, Age: Age(e.Header, e.RequestTime, e.ResponseTime, c.o.Now()), CC: cc}
}

func hasValidator(h http.Header) bool { return h.Get("ETag") != "" || h.Get("Last-Modified") != "" }
