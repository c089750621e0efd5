// Package h1 parses HTTP/1.1 message heads (RFC 9112) strictly, without
// allocating: a request or response head is read into the caller's buffer
// and described by offsets into it. It also frames and copies message
// bodies (Content-Length and chunked, RFC 9112 §6 and §7.1).
//
// It is the wire codec of handoff's HTTP/1.1 fast path. Strict means it
// rejects what RFC 9112 says a server must or ought to reject and what
// could make two parsers disagree about where a message ends: both
// Content-Length and Transfer-Encoding, differing Content-Length values,
// transfer codings other than chunked, invalid chunk sizes, obs-fold, bare
// CR or LF, NUL and other control characters in field values, whitespace
// before the colon, and heads longer than the configured limit or with
// more fields than allowed. Anything it accepts, net/http's ReadRequest
// accepts with the same meaning (FuzzDifferential checks it).
//
// It must not know about routing, proxying or connections.
package h1

import (
	"errors"
	"unsafe"
)

// ErrNeedMore reports that the buffer holds no complete head yet.
var ErrNeedMore = errors.New("h1: incomplete head")

// Error is a head that cannot be accepted, with the status a server
// answers it with (400, 413, 414, 431, 501 or 505).
type Error struct {
	Status int
	Reason string
}

func (e *Error) Error() string { return "h1: " + e.Reason }

func bad(reason string) *Error { return &Error{Status: 400, Reason: reason} }

// Limits bound a request head.
type Limits struct {
	// MaxHeadBytes bounds the request line plus the field lines and the
	// final CRLF, exactly. Zero means 64 KiB.
	MaxHeadBytes int
	// MaxFields bounds the number of field lines. Zero means 100 (nginx
	// and HAProxy cap at about that many).
	MaxFields int
}

func (l Limits) head() int {
	if l.MaxHeadBytes <= 0 {
		return 64 << 10
	}
	return l.MaxHeadBytes
}

func (l Limits) fields() int {
	if l.MaxFields <= 0 {
		return 100
	}
	return l.MaxFields
}

// Span is a byte range [Start, End) of the buffer a head was parsed from.
type Span struct{ Start, End int32 }

// Bytes returns the span's bytes in buf.
func (s Span) Bytes(buf []byte) []byte { return buf[s.Start:s.End] }

// String returns the span's bytes in buf as a string sharing buf's
// memory: valid only while buf is not modified.
func (s Span) String(buf []byte) string {
	if s.End <= s.Start {
		return ""
	}
	return unsafe.String(&buf[s.Start], int(s.End-s.Start))
}

// Len is the span's length.
func (s Span) Len() int { return int(s.End - s.Start) }

// Field is one field line: its name and its value without surrounding
// whitespace; Line is the whole line without the CRLF.
type Field struct {
	Name, Value Span
	// Kind classifies the names the codec and the proxy act on.
	Kind Kind
}

// Kind is a field name the codec recognises (case-insensitively).
type Kind uint8

// Kinds of field names.
const (
	KindOther Kind = iota
	KindHost
	KindContentLength
	KindTransferEncoding
	KindConnection
	KindKeepAlive
	KindProxyConnection
	KindUpgrade
	KindExpect
	KindTE
	KindTrailer
	KindProxyAuthorization
	KindProxyAuthenticate
	KindXForwardedFor
	KindXForwardedProto
	KindXForwardedHost
	KindForwarded
	KindVia
	KindXRequestID
	KindHTTP2Settings
	KindDate
	KindTraceparent
	KindTracestate
)

var kindNames = [...]struct {
	name string
	kind Kind
}{
	{"host", KindHost},
	{"content-length", KindContentLength},
	{"transfer-encoding", KindTransferEncoding},
	{"connection", KindConnection},
	{"keep-alive", KindKeepAlive},
	{"proxy-connection", KindProxyConnection},
	{"upgrade", KindUpgrade},
	{"expect", KindExpect},
	{"te", KindTE},
	{"trailer", KindTrailer},
	{"proxy-authorization", KindProxyAuthorization},
	{"proxy-authenticate", KindProxyAuthenticate},
	{"x-forwarded-for", KindXForwardedFor},
	{"x-forwarded-proto", KindXForwardedProto},
	{"x-forwarded-host", KindXForwardedHost},
	{"forwarded", KindForwarded},
	{"via", KindVia},
	{"x-request-id", KindXRequestID},
	{"http2-settings", KindHTTP2Settings},
	{"date", KindDate},
	{"traceparent", KindTraceparent},
	{"tracestate", KindTracestate},
}

func kindOf(name []byte) Kind {
	for _, k := range kindNames {
		if len(k.name) == len(name) && EqualFold(name, k.name) {
			return k.kind
		}
	}
	return KindOther
}

// EqualFold reports whether b equals the lower-case ASCII string s,
// ignoring ASCII case in b.
func EqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// Hop-by-hop reports whether fields of kind k apply to one connection
// only (RFC 9110 §7.6.1) and are not forwarded, as net/http/httputil's
// ReverseProxy removes them.
func (k Kind) HopByHop() bool {
	switch k {
	case KindConnection, KindKeepAlive, KindProxyConnection, KindUpgrade, KindTE,
		KindTrailer, KindTransferEncoding, KindProxyAuthorization, KindProxyAuthenticate:
		return true
	}
	return false
}

// tchar reports whether c is a token character (RFC 9110 §5.6.2).
var tchar = alnumAnd("!#$%&'*+-.^_`|~")

// alnumAnd is the byte set of ASCII letters, digits and extra.
func alnumAnd(extra string) (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range extra {
		t[c] = true
	}
	return t
}

// fieldValueByte reports whether c may appear in a field value: VCHAR,
// SP, HTAB and obs-text (RFC 9110 §5.5). CR, LF, NUL and other controls
// may not.
func fieldValueByte(c byte) bool { return c == '\t' || (c >= 0x20 && c != 0x7f) }

// isTokenList reports whether v contains token t as a list element
// (RFC 9110 §5.6.1), ignoring ASCII case.
func HasToken(v []byte, t string) bool {
	for len(v) > 0 {
		i := 0
		for i < len(v) && v[i] != ',' {
			i++
		}
		e := trimOWS(v[:i])
		if EqualFold(e, t) {
			return true
		}
		if i == len(v) {
			break
		}
		v = v[i+1:]
	}
	return false
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
