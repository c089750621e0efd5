package proxy

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"

	"github.com/handoff-proxy/handoff/pkg/clientip"
)

// Canonical header keys, written directly into header maps to skip
// canonicalisation on the hot path.
const (
	hdrForwarded     = "Forwarded"
	hdrXForwardedFor = "X-Forwarded-For"
	hdrXForwardedHst = "X-Forwarded-Host"
	hdrXForwardedPrt = "X-Forwarded-Proto"
	hdrVia           = "Via"
	hdrRequestID     = "X-Request-Id"
	hdrUpgrade       = "Upgrade"
	hdrConnection    = "Connection"
	hdrHTTP2Settings = "Http2-Settings"
)

// maxRequestIDLen bounds an incoming X-Request-Id that is propagated.
const maxRequestIDLen = 200

// forwarding rewrites the forwarding headers of one outgoing request. It
// holds only immutable settings, so one value serves all requests.
type forwarding struct {
	trusted clientip.Trusted
	via     string // pseudonym, a token
}

// apply sets X-Forwarded-For/-Proto/-Host, Forwarded, Via and X-Request-Id
// on out (the outgoing header, from which ReverseProxy already removed the
// incoming forwarding headers) from in (the client's request).
//
// From a trusted peer the incoming chain is validated and extended; from
// anyone else it is replaced, so a client cannot forge the addresses a
// backend sees. A peer that is not an IP (a Unix socket) adds nothing to
// X-Forwarded-For and appears as for=unknown in Forwarded (RFC 7239 §6.2).
func (f *forwarding) apply(out http.Header, in *http.Request, requestID string) {
	peer := clientip.Peer(in.RemoteAddr)
	trusted := f.trusted.Contains(peer)
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}

	// X-Forwarded-For: the de facto list of addresses, oldest first.
	var xff string
	if trusted {
		if prior := in.Header[hdrXForwardedFor]; len(prior) > 0 {
			if _, err := clientip.ParseXForwardedFor(prior); err == nil {
				xff = joinListElements(prior)
			}
		}
	}
	if peer.IsValid() {
		if xff != "" {
			xff += ", " + peer.String()
		} else {
			xff = peer.String()
		}
	}
	if xff != "" {
		out[hdrXForwardedFor] = []string{xff}
	}

	// X-Forwarded-Proto: the scheme the original client used.
	xfp := proto
	if trusted {
		if v := in.Header[hdrXForwardedPrt]; len(v) == 1 && validScheme(v[0]) {
			xfp = strings.ToLower(v[0])
		}
	}
	out[hdrXForwardedPrt] = []string{xfp}

	// X-Forwarded-Host: the Host the original client asked for.
	xfh := in.Host
	if trusted {
		if v := in.Header[hdrXForwardedHst]; len(v) == 1 && validHost(v[0]) {
			xfh = v[0]
		}
	}
	if xfh != "" {
		out[hdrXForwardedHst] = []string{xfh}
	}

	// RFC 7239 Forwarded: a trusted peer's well-formed chain is kept and
	// our element appended (§4: each proxy appends one element); a
	// malformed one is dropped rather than passed on as garbage.
	var fwd []byte
	if trusted {
		if prior := in.Header[hdrForwarded]; len(prior) > 0 {
			if elems, err := ParseForwarded(prior); err == nil && len(elems) > 0 {
				fwd = AppendForwarded(fwd, elems)
				fwd = append(fwd, ", "...)
			}
		}
	}
	fwd = append(fwd, "for="...)
	fwd = appendForwardedValue(fwd, forwardedNode(peer))
	if validHost(in.Host) {
		fwd = append(fwd, ";host="...)
		fwd = appendForwardedValue(fwd, in.Host)
	}
	fwd = append(fwd, ";proto="...)
	fwd = append(fwd, proto...)
	out[hdrForwarded] = []string{string(fwd)}

	// RFC 9110 §7.6.3: a proxy MUST add itself to Via, with the protocol
	// version it received the request with ("2" for HTTP/2).
	via := viaEntry(in.ProtoMajor, in.ProtoMinor, f.via)
	if prior := in.Header[hdrVia]; len(prior) > 0 {
		via = joinListElements(prior) + ", " + via
	}
	out[hdrVia] = []string{via}

	out[hdrRequestID] = []string{requestID}
}

// viaEntry formats one Via element: received-protocol and pseudonym
// (RFC 9110 §7.6.3; the protocol name is omitted for HTTP).
func viaEntry(major, minor int, pseudonym string) string {
	switch {
	case major == 1 && minor == 1:
		return "1.1 " + pseudonym
	case major >= 2:
		return strconv.Itoa(major) + " " + pseudonym
	default:
		return strconv.Itoa(major) + "." + strconv.Itoa(minor) + " " + pseudonym
	}
}

// joinListElements folds several field lines of a list-based field into
// one (RFC 9110 §5.3), dropping empty ones.
func joinListElements(vs []string) string {
	if len(vs) == 1 {
		return strings.Trim(vs[0], " \t")
	}
	var b strings.Builder
	for _, v := range vs {
		v = strings.Trim(v, " \t")
		if v == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(v)
	}
	return b.String()
}

// requestID returns the incoming X-Request-Id when it is a sane token (one
// field line, 1 to 200 visible ASCII characters, as nginx and Caddy
// propagate it from anyone) and a new random 128-bit hex id otherwise.
func requestID(h http.Header) string {
	if v := h[hdrRequestID]; len(v) == 1 && saneRequestID(v[0]) {
		return v[0]
	}
	return newRequestID()
}

// RequestID is the X-Request-Id a request is forwarded with: the incoming
// one when it is sane, a new random one otherwise. Handlers in front of the
// forwarder that answer some requests themselves (the cache) use it, and
// set it on the request so that the forwarder keeps the same id.
func RequestID(h http.Header) string { return requestID(h) }

func saneRequestID(s string) bool {
	if s == "" || len(s) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [32]byte
	randomID(&b)
	return string(b[:])
}

// randomID fills b with 128 random bits in hex. A request id must be
// unique, not secret: math/rand/v2's global generator (ChaCha8, seeded
// from the OS per thread) serves, without the getrandom(2) call per
// request crypto/rand makes (measured: 7 % of an HTTP/2 request's CPU).
func randomID(b *[32]byte) {
	var r [16]byte
	binary.LittleEndian.PutUint64(r[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(r[8:], rand.Uint64())
	hex.Encode(b[:], r[:])
}

// stripH2CUpgrade removes an "Upgrade: h2c" offer from the outgoing
// header, so that the request is forwarded as a plain request. Forwarding
// it lets a client that the backend upgrades to HTTP/2 talk to the backend
// directly on a tunnel the proxy no longer inspects (h2c smuggling, Bishop
// Fox 2020). HTTP2-Settings is connection-specific (RFC 7540 §3.2.1) and
// is always removed.
func stripH2CUpgrade(in, out http.Header) {
	delete(out, hdrHTTP2Settings)
	if !headerContainsToken(in[hdrUpgrade], "h2c") {
		return
	}
	delete(out, hdrUpgrade)
	delete(out, hdrConnection)
}
