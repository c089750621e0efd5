package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/handoff-proxy/handoff/pkg/activation"
	"github.com/handoff-proxy/handoff/pkg/balance"
	"github.com/handoff-proxy/handoff/pkg/clientip"
	"github.com/handoff-proxy/handoff/pkg/health"
	"github.com/handoff-proxy/handoff/pkg/route"
	"github.com/handoff-proxy/handoff/pkg/upstream"

	"github.com/handoff-proxy/handoff/pkg/hostname"
)

// Allowed values of the enumerated keys.
var (
	protocols  = []string{ProtocolHTTP, ProtocolHTTPS, ProtocolTCP, ProtocolReplicate, ProtocolForwardProxy}
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"json", "text"}
	tlsVersion = []string{"1.2", "1.3"}

	clientAuthModes = []string{ClientAuthRequire, ClientAuthVerifyIfGiven}
)

// AdminOff is the admin.listen value that disables the admin API.
const AdminOff = "off"

// maxNameLen is the longest listener name: sd_pid_notify_with_fds(3)
// limits FDNAME= to 255 bytes.
const maxNameLen = 255

// Validate checks c and returns an Errors with every problem found, or
// nil. Zero values that mean a default are accepted, so it works on a
// Config built by hand as well as on one from Load (which has called
// ApplyDefaults). activated are the names of the sockets systemd passed
// (LISTEN_FDNAMES, taken literally): a listener without an address must be
// one of them. Validate reads the TLS certificate, key and CA files the
// config names, to report unreadable or mismatched ones now rather than
// at the first handshake.
func (c *Config) Validate(activated []string) error {
	v := validator{activated: activated}
	v.config(c)
	return v.errs.result()
}

// validator collects problems and warnings about one Config.
type validator struct {
	activated   []string
	errs, warns errorList
}

func (v *validator) config(c *Config) {
	v.listeners(c)
	v.admin(c)
	oneOf(&v.errs, "log.level", c.Log.Level, logLevels)
	oneOf(&v.errs, "log.format", c.Log.Format, logFormats)
	v.accessLog(c.Log)
	v.tracing(c.Tracing)
	for i, p := range c.TrustedProxies {
		if _, err := clientip.ParsePrefix(p); err != nil {
			v.errs.add(indexKey("trusted_proxies", i), "%v", err)
		}
	}
	v.state(c)
	v.upstreams(c)
	v.routes(c)
	v.cache(c)
	v.l4(c)     // l4.go
	v.access(c) // access.go
	v.l7(c)     // l7.go
	v.negatives("", reflect.ValueOf(c).Elem())
}

// oneOf checks an enumerated value; empty means the default.
func oneOf(l *errorList, key, val string, allowed []string) {
	if val != "" && !slices.Contains(allowed, val) {
		l.add(key, "%q is not allowed (allowed: %s)", val, strings.Join(allowed, ", "))
	}
}

// validName reports whether s is a valid listener or upstream name.
func validName(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return false
		}
	}
	return true
}

func (v *validator) listeners(c *Config) {
	if len(c.Listeners) == 0 {
		msg := "no listeners: give -l or configure listeners"
		if len(v.activated) > 0 {
			msg += fmt.Sprintf(" (systemd passed sockets named %s: name a listener after one of them)", strings.Join(v.activated, ", "))
		}
		v.errs.add("listeners", "%s", msg)
		return
	}
	names := make(map[string]int)
	addrs := make(map[string]int)
	quic := make(map[string]int) // fd names of http3 UDP sockets
	defer func() {
		for n, i := range quic {
			if j, dup := names[n]; dup {
				v.errs.add(joinKey(indexKey("listeners", j), "name"), "%q is the UDP socket name of listeners[%d] (http3)", n, i)
			}
		}
	}()
	for i, l := range c.Listeners {
		key := indexKey("listeners", i)
		switch {
		case l.Name == "":
			v.errs.add(joinKey(key, "name"), "required")
		case len(l.Name) > maxNameLen:
			v.errs.add(joinKey(key, "name"), "longer than %d bytes (the FDNAME= limit of sd_pid_notify_with_fds(3))", maxNameLen)
		case !validName(l.Name):
			v.errs.add(joinKey(key, "name"), "%q is not a valid name: use letters, digits, '_', '.' and '-'", l.Name)
		case l.Name == "admin":
			v.errs.add(joinKey(key, "name"), `"admin" is reserved for the admin API's socket`)
		}
		if l.HTTP3 {
			// The UDP socket's fd name (QUICSuffix) must not be
			// another listener's.
			quic[l.Name+QUICSuffix] = i
		}
		if j, dup := names[l.Name]; dup && l.Name != "" {
			v.errs.add(joinKey(key, "name"), "duplicate listener name %q (also listeners[%d])", l.Name, j)
		} else {
			names[l.Name] = i
		}

		if l.Address == "" {
			if !slices.Contains(v.activated, l.Name) {
				passed := "none"
				if len(v.activated) > 0 {
					passed = strings.Join(v.activated, ", ")
				}
				v.errs.add(joinKey(key, "address"), "required: listener %q has no address and systemd passed no socket of that name (passed: %s)", l.Name, passed)
			}
		} else if norm, err := checkListenAddress(l.Address); err != nil {
			v.errs.add(joinKey(key, "address"), "%v", err)
		} else if norm != "" {
			if j, dup := addrs[norm]; dup {
				v.errs.add(joinKey(key, "address"), "same address as listeners[%d]", j)
			} else {
				addrs[norm] = i
			}
		}

		oneOf(&v.errs, joinKey(key, "protocol"), l.Protocol, protocols)
		tlsKey := joinKey(key, "tls")
		switch {
		case l.Protocol == ProtocolHTTPS && (l.TLS == nil || len(l.TLS.Certificates) == 0 && l.TLS.ACME == nil):
			v.errs.add(joinKey(tlsKey, "certificates"), "required for protocol https (or tls.acme)")
		case l.Protocol != ProtocolHTTPS && l.TLS != nil:
			v.errs.add(tlsKey, "set, but the protocol is not https: set protocol: https, or remove tls")
		}
		if l.HTTP3 && l.Protocol != ProtocolHTTPS {
			v.errs.add(joinKey(key, "http3"), "needs protocol https: QUIC always runs TLS 1.3 (RFC 9001)")
		}
		if l.TLS != nil {
			oneOf(&v.errs, joinKey(tlsKey, "min_version"), l.TLS.MinVersion, tlsVersion)
			for j, cert := range l.TLS.Certificates {
				v.keyPair(indexKey(joinKey(tlsKey, "certificates"), j), cert.Cert, cert.Key, true)
			}
			if ca := l.TLS.ClientAuth; ca != nil {
				caKey := joinKey(tlsKey, "client_auth")
				oneOf(&v.errs, joinKey(caKey, "mode"), ca.Mode, clientAuthModes)
				if ca.CA == "" {
					v.errs.add(joinKey(caKey, "ca"), "required")
				} else if err := checkCA(ca.CA); err != nil {
					v.errs.add(joinKey(caKey, "ca"), "%v", err)
				}
			}
			if l.TLS.ACME != nil {
				v.acme(joinKey(tlsKey, "acme"), l.TLS.ACME) // acme.go
			}
		}
	}
}

// keyPair checks a certificate and key file pair; required says both must
// be given, otherwise both or neither.
func (v *validator) keyPair(key, cert, priv string, required bool) {
	switch {
	case cert == "" && priv == "":
		if required {
			v.errs.add(joinKey(key, "cert"), "required")
			v.errs.add(joinKey(key, "key"), "required")
		}
		return
	case cert == "" && required:
		v.errs.add(joinKey(key, "cert"), "required")
		return
	case priv == "" && required:
		v.errs.add(joinKey(key, "key"), "required")
		return
	case cert == "":
		v.errs.add(joinKey(key, "cert"), "required with key (both or neither)")
		return
	case priv == "":
		v.errs.add(joinKey(key, "key"), "required with cert (both or neither)")
		return
	}
	if _, err := tls.LoadX509KeyPair(cert, priv); err != nil {
		v.errs.addErr(key, fmt.Sprintf("load certificate %q with key %q", cert, priv), err)
	}
}

func (v *validator) admin(c *Config) {
	a := c.Admin.Listen
	if a == "" || a == AdminOff {
		return
	}
	norm, err := checkListenAddress(a)
	if err != nil {
		v.errs.add("admin.listen", "%v (or %q to disable the admin API)", err, AdminOff)
		return
	}
	for i, l := range c.Listeners {
		if n, err := checkListenAddress(l.Address); err == nil && n != "" && n == norm {
			v.errs.add("admin.listen", "same address as listeners[%d]", i)
		}
	}
}

// checkListenAddress checks an address to bind with activation.ParseAddress
// ("host:port", ":port", "[v6]:port", "unix:/abs/path" or
// "unix:@abstract"), plus what config asks beyond what can be bound: an
// absolute socket path and a host that is an IP or a DNS name. It returns
// a normalized form for finding duplicates, empty when duplicates are fine
// (port 0: the kernel picks a free port each time).
func checkListenAddress(a string) (string, error) {
	addr, err := activation.ParseAddress(a)
	if err != nil {
		if strings.HasPrefix(a, "unix:") {
			return "", fmt.Errorf("%q: %w", a, err)
		}
		if host, _, serr := net.SplitHostPort(a); serr == nil && host != "" {
			if _, perr := netip.ParseAddr(host); perr != nil {
				if derr := hostname.Check(host); derr != nil {
					return "", fmt.Errorf("%q: host: %w", a, derr)
				}
			}
		}
		return "", fmt.Errorf("%q is not host:port, :port, [v6]:port or unix:/path (or its port is not a number from 0 to 65535): %w", a, err)
	}
	if addr.Network == "unix" {
		path := addr.Address
		switch {
		case path[0] == '@': // Linux abstract namespace, unix(7)
			return a, nil
		case !filepath.IsAbs(path):
			return "", fmt.Errorf("%q: socket path must be absolute (unix:/run/handoff/http.sock)", a)
		}
		return "unix:" + filepath.Clean(path), nil
	}
	// Normalize the parsed address: activation checked its shape.
	host, port, _ := net.SplitHostPort(addr.Address)
	if host != "" {
		if ip, err := netip.ParseAddr(host); err == nil {
			host = ip.Unmap().String()
		} else if err := hostname.Check(host); err != nil {
			return "", fmt.Errorf("%q: host: %w", a, err)
		}
	}
	if port == "0" {
		return "", nil
	}
	return net.JoinHostPort(strings.ToLower(host), port), nil
}

func (v *validator) upstreams(c *Config) {
	for _, name := range slices.Sorted(maps.Keys(c.Upstreams)) {
		u := c.Upstreams[name]
		key := joinKey("upstreams", name)
		if !validName(name) {
			v.errs.add(key, "%q is not a valid upstream name: use letters, digits, '_', '.' and '-'", name)
		}
		if _, err := balance.ParseStrategy(u.Strategy); err != nil {
			v.errs.add(joinKey(key, "strategy"), "%v", err)
		}
		if _, err := balance.ParseHashKey(u.HashKey); err != nil {
			v.errs.add(joinKey(key, "hash_key"), "%v", err)
		} else if u.HashKey != "" && u.Strategy != StrategyHash {
			strategy := cmpOr(u.Strategy, StrategyRoundRobin)
			v.warns.add(joinKey(key, "hash_key"), "ignored: the strategy is %s, not hash", strategy)
		}
		if len(u.Targets) == 0 {
			v.errs.add(joinKey(key, "targets"), "at least one target is required")
		}
		seen := make(map[string]int)
		for i, t := range u.Targets {
			tkey := indexKey(joinKey(key, "targets"), i)
			if t.SRV != "" {
				v.srvTarget(tkey, t, i, seen)
				continue
			}
			if t.Address == "" {
				v.errs.add(joinKey(tkey, "address"), "required (or srv)")
				continue
			}
			tu, err := upstream.ParseAddress(t.Address)
			if err != nil {
				v.errs.add(joinKey(tkey, "address"), "%v", err)
				continue
			}
			norm := upstream.Canonical(tu)
			if j, dup := seen[norm]; dup {
				v.errs.add(joinKey(tkey, "address"), "same target as targets[%d] (%s)", j, norm)
			} else {
				seen[norm] = i
			}
		}
		v.dns(key, u)
		tlsKey := joinKey(key, "tls")
		if u.TLS.CA != "" {
			if err := checkCA(u.TLS.CA); err != nil {
				v.errs.add(joinKey(tlsKey, "ca"), "%v", err)
			}
		}
		v.keyPair(tlsKey, u.TLS.Cert, u.TLS.Key, false)
		v.health(joinKey(key, "health"), u.Health)
		v.retryOn(joinKey(key, "retry_on"), u.RetryOn)
		if _, err := health.ParsePercent(u.RetryBudget); err != nil {
			v.errs.add(joinKey(key, "retry_budget"), "%v", err)
		}
		if u.Queue.Size > 0 && u.MaxConns == 0 && !anyMaxConns(u.Targets) {
			v.warns.add(joinKey(key, "queue.size"), "ignored: no max_conns is set, so no request ever waits")
		}
	}
}

// srvTarget checks a target given by SRV record.
func (v *validator) srvTarget(tkey string, t Target, i int, seen map[string]int) {
	if t.Address != "" {
		v.errs.add(joinKey(tkey, "srv"), "set either address or srv, not both")
		return
	}
	scheme, name, err := upstream.ParseSRV(t.SRV)
	if err != nil {
		v.errs.add(joinKey(tkey, "srv"), "%v", err)
		return
	}
	norm := "srv+" + scheme + "://" + strings.ToLower(strings.TrimSuffix(name, "."))
	if j, dup := seen[norm]; dup {
		v.errs.add(joinKey(tkey, "srv"), "same SRV name as targets[%d]", j)
	} else {
		seen[norm] = i
	}
}

// dns checks how an upstream's host names are looked up.
func (v *validator) dns(key string, u Upstream) {
	if u.Resolver != "" {
		if _, err := upstream.ParseResolver(u.Resolver); err != nil {
			v.errs.add(joinKey(key, "resolver"), "%v", err)
		}
	}
}

// retryOn checks every entry of an upstream's retry_on.
func (v *validator) retryOn(key string, list []string) {
	seen := make(map[string]bool, len(list))
	for i, r := range list {
		ikey := indexKey(key, i)
		switch {
		case !slices.Contains(RetryOnValues(), r):
			v.errs.add(ikey, "%q is not one of %s", r, strings.Join(RetryOnValues(), ", "))
		case seen[r]:
			v.errs.add(ikey, "%q is listed twice", r)
		}
		seen[r] = true
	}
}

func anyMaxConns(ts []Target) bool {
	for _, t := range ts {
		if t.MaxConns > 0 {
			return true
		}
	}
	return false
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// validFieldValue reports whether s may be a header field value (RFC 9110
// §5.5): no control characters other than horizontal tab, and no leading
// or trailing whitespace (which parsers strip, so it could never match).
func validFieldValue(s string) bool {
	for i := range len(s) {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return strings.Trim(s, " \t") == s
}

// checkCA checks that a CA file is readable and holds certificates.
func checkCA(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read CA file: %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return fmt.Errorf("%q holds no PEM certificates", path)
	}
	return nil
}

func (v *validator) routes(c *Config) {
	have := slices.Sorted(maps.Keys(c.Upstreams))
	names := make(map[string]int)
	matches := make(map[string]int)
	used := make(map[string]bool)
	for i, r := range c.Routes {
		key := indexKey("routes", i)
		name := r.Name
		if name == "" {
			name = "route" + strconv.Itoa(i)
		}
		if j, dup := names[name]; dup {
			v.errs.add(joinKey(key, "name"), "duplicate route name %q (also routes[%d]; unnamed routes are called route<index>)", name, j)
		} else {
			names[name] = i
		}
		switch _, ok := c.Upstreams[r.Upstream]; {
		case r.Upstream == "" && r.AnswersItself(): // l7.go: redirect and respond need no upstream
		case r.Upstream == "":
			v.errs.add(joinKey(key, "upstream"), "required")
		case !ok && len(have) == 0:
			v.errs.add(joinKey(key, "upstream"), "unknown upstream %q (no upstreams are configured)", r.Upstream)
		case !ok:
			v.errs.add(joinKey(key, "upstream"), "unknown upstream %q (have: %s)", r.Upstream, strings.Join(have, ", "))
		default:
			used[r.Upstream] = true
		}
		if canon, ok := v.match(joinKey(key, "match"), r.Match); ok {
			if j, dup := matches[canon]; dup {
				v.errs.add(joinKey(key, "match"), "same conditions as routes[%d] (%q): one of them could never be chosen", j, routeName(c.Routes[j], j))
			} else {
				matches[canon] = i
			}
		}
	}
	for _, name := range have {
		if !used[name] {
			v.warns.add(joinKey("upstreams", name), "not used by any route")
		}
	}
}

func routeName(r Route, i int) string {
	if r.Name != "" {
		return r.Name
	}
	return "route" + strconv.Itoa(i)
}

// match checks a route's conditions and returns their canonical form, for
// finding routes that can never be told apart.
func (v *validator) match(key string, m Match) (string, bool) {
	ok := true
	if _, _, err := route.ParseHostPattern(m.Host); err != nil {
		v.errs.add(joinKey(key, "host"), "%v", err)
		ok = false
	}
	if _, err := route.ParsePathPrefix(m.PathPrefix); err != nil {
		v.errs.add(joinKey(key, "path_prefix"), "%v", err)
		ok = false
	}
	methods := make([]string, 0, len(m.Methods))
	for i, meth := range m.Methods {
		upper, err := route.ParseMethod(meth)
		if err != nil {
			v.errs.add(indexKey(joinKey(key, "methods"), i), "%v", err)
			ok = false
			upper = strings.ToUpper(meth)
		}
		methods = append(methods, upper)
	}
	slices.Sort(methods)
	methods = slices.Compact(methods)
	headers := make([]string, 0, len(m.Headers))
	seen := make(map[string]string)
	for _, name := range slices.Sorted(maps.Keys(m.Headers)) {
		hkey := joinKey(joinKey(key, "headers"), name)
		val := m.Headers[name]
		// RFC 9110 §5.5 for values; route owns the names.
		if _, err := route.ParseHeaderName(name); err != nil {
			v.errs.add(hkey, "%v", err)
			ok = false
			continue
		}
		if !validFieldValue(val) {
			v.errs.add(hkey, "%q is not a valid header value", val)
			ok = false
		}
		canon := strings.ToLower(name)
		if other, dup := seen[canon]; dup {
			v.errs.add(hkey, "same header as %q (header names are case-insensitive)", other)
			ok = false
		}
		seen[canon] = name
		headers = append(headers, canon+"="+val)
	}
	slices.Sort(headers)
	return fmt.Sprintf("%q %q %q %q", strings.ToLower(strings.TrimSuffix(m.Host, ".")), m.PathPrefix, methods, headers), ok
}

// negatives reports every negative number and duration: none of the
// schema's numbers has a meaning below zero.
func (v *validator) negatives(key string, rv reflect.Value) {
	switch rv.Kind() {
	case reflect.Pointer:
		if !rv.IsNil() {
			v.negatives(key, rv.Elem())
		}
	case reflect.Struct:
		for _, f := range fieldsOf(rv.Type()) {
			v.negatives(joinKey(key, f.name), rv.FieldByIndex(f.sf.Index))
		}
	case reflect.Slice:
		for i := range rv.Len() {
			v.negatives(indexKey(key, i), rv.Index(i))
		}
	case reflect.Map:
		for _, k := range rv.MapKeys() {
			v.negatives(joinKey(key, k.String()), rv.MapIndex(k))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Float32, reflect.Float64:
		n, _ := number(rv.Interface())
		if n >= 0 {
			return
		}
		if rv.Type() == durationType {
			v.errs.add(key, "must not be negative (got %s)", time.Duration(rv.Int()))
		} else {
			v.errs.add(key, "must not be negative (got %v)", rv.Interface())
		}
	}
}
