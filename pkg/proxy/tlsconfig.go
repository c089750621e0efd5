package proxy

import (
	"crypto/tls"
	"fmt"
)

// TLSConfig returns a copy of the client TLS config the transports of
// upstream name use towards https:// targets (CA, client certificate,
// server name, verification), so that health checks of those targets are
// made with the same settings. Nil means the defaults (system roots). The
// upstream must have been built by Update.
func (t *Transports) TLSConfig(name string) (*tls.Config, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ut, ok := t.m[name]
	if !ok {
		return nil, fmt.Errorf("upstream %q: no transport", name)
	}
	if c := ut.std.TLSClientConfig; c != nil {
		return c.Clone(), nil
	}
	return nil, nil
}
