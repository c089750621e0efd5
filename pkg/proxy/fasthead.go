package proxy

import (
	"net/netip"
	"strconv"
	"strings"
	"unsafe"

	"github.com/handoff-proxy/handoff/pkg/clientip"
	"github.com/handoff-proxy/handoff/pkg/h1"
	"github.com/handoff-proxy/handoff/pkg/tracecontext"
)

// appendRequestHead appends the head forwarded for req: its request line
// in HTTP/1.1, its fields without hop-by-hop ones (RFC 9110 §7.6.1: also
// those the Connection field names) and without the forwarding fields it
// came with, then the forwarding fields of this proxy (as
// forwarding.apply writes them for net/http) and the body's framing.
func (f *forwarding) appendRequestHead(b []byte, req *FastRequest, id string) []byte {
	buf, head := req.Buf, req.Head
	b = append(b, head.Method.Bytes(buf)...)
	b = append(b, ' ')
	b = append(b, head.Target.Bytes(buf)...)
	b = append(b, " HTTP/1.1\r\n"...)
	conn, hasConn := head.Field(h1.KindConnection)
	// A request through net/http (fastnet.go) has the trace context
	// of this proxy's span already (tracing.go); the fast path's own
	// requests get it here.
	ownTrace := req.rw == nil
	parent, traced := tracecontext.Parent{}, false
	if v, ok := head.Field(h1.KindTraceparent); ownTrace && ok && countKind(head, h1.KindTraceparent) == 1 {
		parent, traced = tracecontext.Parse(v.String(buf))
	}
	for _, fl := range head.Fields {
		switch {
		case fl.Kind == h1.KindHost:
			continue // written first below
		case ownTrace && (fl.Kind == h1.KindTraceparent || fl.Kind == h1.KindTracestate && !traced):
			// W3C Trace Context §3.3.1: tracestate only travels with
			// the traceparent it came with.
			continue
		case fl.Kind.HopByHop(), fl.Kind == h1.KindHTTP2Settings, forwardingKind(fl.Kind):
			continue
		case fl.Kind == h1.KindContentLength:
			continue // the framing is written last, once (RFC 9112 §6.3: a second one is an error to many servers)
		case fl.Kind == h1.KindOther && hasConn && h1.HasToken(conn.Bytes(buf), lower(fl.Name.Bytes(buf))):
			continue
		}
		b = append(b, buf[fl.Name.Start:fl.Value.End]...)
		b = append(b, '\r', '\n')
	}
	if head.HasHost {
		b = append(b, "Host: "...)
		b = append(b, head.Host.Bytes(buf)...)
		b = append(b, '\r', '\n')
	}
	if te, ok := head.Field(h1.KindTE); ok && h1.HasToken(te.Bytes(buf), "trailers") {
		// RFC 9110 §10.1.4: "trailers" says the client accepts them;
		// passed on as net/http/httputil.ReverseProxy does.
		b = append(b, "Te: trailers\r\n"...)
	}
	b = f.appendForwarding(b, req, id)
	// Trace Context: this proxy's span as the parent, in the client's
	// trace or a new one (what tracing.go does on the net/http path).
	if ownTrace {
		tp := tracecontext.Child(parent, traced, false).AppendTo(req.traceBuf[:0])
		req.Info.TraceID = unsafe.String(&req.traceBuf[3], 32)
		b = append(b, "Traceparent: "...)
		b = append(b, tp...)
		b = append(b, '\r', '\n')
	}
	if head.ContentLength >= 0 {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, head.ContentLength, 10)
		b = append(b, '\r', '\n')
	}
	return append(b, '\r', '\n')
}

// forwardingKind reports the incoming forwarding fields, which
// appendForwarding replaces.
func forwardingKind(k h1.Kind) bool {
	switch k {
	case h1.KindXForwardedFor, h1.KindXForwardedProto, h1.KindXForwardedHost, h1.KindForwarded, h1.KindVia, h1.KindXRequestID:
		return true
	}
	return false
}

// lower returns the lower-case form of a field name for HasToken; names
// are short and rarely named in Connection, so the copy is rare.
func lower(b []byte) string { return strings.ToLower(string(b)) }

// appendForwarding appends X-Forwarded-For/-Proto/-Host, Forwarded, Via
// and X-Request-Id with the semantics of forwarding.apply: a trusted
// peer's chains are kept when well formed and extended, anyone else's
// replaced.
func (f *forwarding) appendForwarding(b []byte, req *FastRequest, id string) []byte {
	buf, head, peer := req.Buf, req.Head, req.Peer
	trusted := f.trusted.Contains(peer)
	proto := "http"
	if req.TLS {
		proto = "https"
	}
	host := ""
	if head.HasHost {
		host = head.Host.String(buf)
	}
	var prior func(k h1.Kind) []string
	if trusted {
		prior = func(k h1.Kind) []string { return fieldValues(req, k) }
	}

	// X-Forwarded-For
	xffStart := len(b)
	b = append(b, "X-Forwarded-For: "...)
	n := len(b)
	if trusted {
		if vs := prior(h1.KindXForwardedFor); len(vs) > 0 {
			if _, err := clientip.ParseXForwardedFor(vs); err == nil {
				b = append(b, joinListElements(vs)...)
			}
		}
	}
	if peer.IsValid() {
		if len(b) > n {
			b = append(b, ", "...)
		}
		b = peer.AppendTo(b)
	}
	if len(b) == n {
		b = b[:xffStart]
	} else {
		b = append(b, '\r', '\n')
	}

	// X-Forwarded-Proto
	b = append(b, "X-Forwarded-Proto: "...)
	xfp := proto
	if trusted {
		if vs := prior(h1.KindXForwardedProto); len(vs) == 1 && validScheme(vs[0]) {
			xfp = strings.ToLower(vs[0])
		}
	}
	b = append(b, xfp...)
	b = append(b, '\r', '\n')

	// X-Forwarded-Host
	xfh := host
	if trusted {
		if vs := prior(h1.KindXForwardedHost); len(vs) == 1 && validHost(vs[0]) {
			xfh = vs[0]
		}
	}
	if xfh != "" {
		b = append(b, "X-Forwarded-Host: "...)
		b = append(b, xfh...)
		b = append(b, '\r', '\n')
	}

	// Forwarded (RFC 7239)
	b = append(b, "Forwarded: "...)
	if trusted {
		if vs := prior(h1.KindForwarded); len(vs) > 0 {
			if elems, err := ParseForwarded(vs); err == nil && len(elems) > 0 {
				b = AppendForwarded(b, elems)
				b = append(b, ", "...)
			}
		}
	}
	b = append(b, "for="...)
	b = appendNode(b, peer)
	if validHost(host) {
		b = append(b, ";host="...)
		b = appendForwardedValue(b, host)
	}
	b = append(b, ";proto="...)
	b = append(b, proto...)
	b = append(b, '\r', '\n')

	// Via (RFC 9110 §7.6.3), kept from anyone.
	b = append(b, "Via: "...)
	if vs := fieldValues(req, h1.KindVia); len(vs) > 0 {
		b = append(b, joinListElements(vs)...)
		b = append(b, ", "...)
	}
	switch {
	case req.proto != "":
		b = append(b, req.proto...)
		b = append(b, ' ')
	case head.Minor == 1:
		b = append(b, "1.1 "...)
	default:
		b = append(b, "1.0 "...)
	}
	b = append(b, f.via...)
	b = append(b, "\r\nX-Request-Id: "...)
	b = append(b, id...)
	return append(b, '\r', '\n')
}

// appendNode appends a Forwarded node (RFC 7239 §6) without allocating:
// an IPv4 address bare, an IPv6 one quoted in brackets, else "unknown".
func appendNode(b []byte, ip netip.Addr) []byte {
	switch {
	case !ip.IsValid():
		return append(b, "unknown"...)
	case ip.Is4():
		return ip.AppendTo(b)
	}
	b = append(b, `"[`...)
	b = ip.WithZone("").AppendTo(b)
	return append(b, `]"`...)
}

// fieldValues returns the values of the fields of kind k; nil when none
// (the common case, without allocating).
func fieldValues(req *FastRequest, k h1.Kind) []string {
	var vs []string
	for _, f := range req.Head.Fields {
		if f.Kind == k {
			vs = append(vs, string(f.Value.Bytes(req.Buf)))
		}
	}
	return vs
}

// requestIDOf is requestID for a parsed head, without allocating: the
// string shares req's buffers and is valid until the next request of the
// connection (the access log record is written before that).
func requestIDOf(req *FastRequest) string {
	if v, ok := req.Head.Field(h1.KindXRequestID); ok {
		if s := v.String(req.Buf); saneRequestID(s) && countKind(req.Head, h1.KindXRequestID) == 1 {
			return s
		}
	}
	randomID(&req.idBuf)
	return unsafe.String(&req.idBuf[0], len(req.idBuf))
}

func countKind(head *h1.Request, k h1.Kind) int {
	n := 0
	for _, f := range head.Fields {
		if f.Kind == k {
			n++
		}
	}
	return n
}
