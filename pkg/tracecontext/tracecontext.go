// Package tracecontext reads and writes the W3C Trace Context traceparent
// header (https://www.w3.org/TR/trace-context/, level 1): the trace a
// request belongs to and the span that sent it, so that the proxy can pass
// a trace on to the upstream, or start one, without a tracing SDK.
//
// It owns the header's syntax and the generation of ids. It does not know
// about spans, sampling decisions or exporters (package server and the
// OpenTelemetry SDK do), nor about tracestate, which is passed on as is.
package tracecontext

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
)

// Header is the traceparent field name; StateHeader is tracestate's.
const (
	Header      = "Traceparent"
	StateHeader = "Tracestate"
)

// FlagSampled is the sampled bit of the trace flags (§3.2.2.5.1): the
// caller may have recorded its span.
const FlagSampled = 0x01

// TraceID identifies a trace; the zero TraceID is invalid.
type TraceID [16]byte

// SpanID identifies a span (the header's parent-id); the zero SpanID is
// invalid.
type SpanID [8]byte

// String is the id in lower-case hex, as the header and logs write it.
func (t TraceID) String() string { return hex.EncodeToString(t[:]) }

// String is the id in lower-case hex.
func (s SpanID) String() string { return hex.EncodeToString(s[:]) }

// IsValid reports whether t is not all zeros (§3.2.2.3).
func (t TraceID) IsValid() bool { return t != TraceID{} }

// IsValid reports whether s is not all zeros (§3.2.2.4).
func (s SpanID) IsValid() bool { return s != SpanID{} }

// Parent is a parsed traceparent. The zero Parent is invalid.
type Parent struct {
	TraceID TraceID
	SpanID  SpanID
	Flags   byte
}

// IsValid reports whether both ids are valid.
func (p Parent) IsValid() bool { return p.TraceID.IsValid() && p.SpanID.IsValid() }

// Sampled reports whether the sampled flag is set.
func (p Parent) Sampled() bool { return p.Flags&FlagSampled != 0 }

// headerLen is the length of a version 00 traceparent:
// "00-" + 32 + "-" + 16 + "-" + 2.
const headerLen = 55

// Parse parses a traceparent value. It reports false for anything the
// specification says to ignore: a wrong length or separator, upper-case
// or non-hex digits, version ff, all-zero ids, and a version 00 value with
// anything after the flags. Values of a later version are read by their
// first four fields when what follows starts with "-" (§4.3: parsing
// future versions).
func Parse(s string) (Parent, bool) {
	if len(s) < headerLen || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return Parent{}, false
	}
	var version [1]byte
	if !decodeLower(version[:], s[0:2]) || version[0] == 0xff {
		return Parent{}, false
	}
	if version[0] == 0 && len(s) != headerLen || len(s) > headerLen && s[headerLen] != '-' {
		return Parent{}, false
	}
	var p Parent
	var flags [1]byte
	if !decodeLower(p.TraceID[:], s[3:35]) || !decodeLower(p.SpanID[:], s[36:52]) || !decodeLower(flags[:], s[53:55]) {
		return Parent{}, false
	}
	// Only the sampled flag is defined; what this package writes is
	// version 00, so unknown flags are not passed on (§3.2.2.5).
	p.Flags = flags[0] & FlagSampled
	if !p.IsValid() {
		return Parent{}, false
	}
	return p, true
}

// FromHeader returns the request's traceparent. More than one
// traceparent field is invalid (§3.2: a single header).
func FromHeader(h http.Header) (Parent, bool) {
	v := h[Header]
	if len(v) != 1 {
		return Parent{}, false
	}
	return Parse(v[0])
}

// String is p as a version 00 traceparent value.
func (p Parent) String() string {
	return string(p.AppendTo(make([]byte, 0, headerLen)))
}

// AppendTo appends p as a version 00 traceparent value to b.
func (p Parent) AppendTo(b []byte) []byte {
	b = append(b, "00-"...)
	b = hex.AppendEncode(b, p.TraceID[:])
	b = append(b, '-')
	b = hex.AppendEncode(b, p.SpanID[:])
	b = append(b, '-')
	return hex.AppendEncode(b, []byte{p.Flags})
}

// NewTraceID returns a random trace id (§3.2.2.3: random or at least
// its right-most 7 bytes random). math/rand/v2's global generator is
// ChaCha8 seeded from the operating system: unpredictable, and cheap.
func NewTraceID() TraceID {
	var t TraceID
	for t == (TraceID{}) {
		binary.BigEndian.PutUint64(t[:8], rand.Uint64())
		binary.BigEndian.PutUint64(t[8:], rand.Uint64())
	}
	return t
}

// NewSpanID returns a random, valid span id.
func NewSpanID() SpanID {
	var s SpanID
	for s == (SpanID{}) {
		binary.BigEndian.PutUint64(s[:], rand.Uint64())
	}
	return s
}

// Child is the traceparent to send on behalf of a new span of the
// same trace: p's trace id and flags, a new span id. A trace without a
// valid parent starts here: new trace id, and the sampled flag only
// when sampled says so.
func Child(p Parent, ok, sampled bool) Parent {
	if !ok {
		p = Parent{TraceID: NewTraceID()}
		if sampled {
			p.Flags = FlagSampled
		}
	}
	p.SpanID = NewSpanID()
	return p
}

// decodeLower decodes lower-case hex s into dst (len(s) == 2*len(dst)).
// Upper-case digits are refused: the header is lower case (§3.2.2).
func decodeLower(dst []byte, s string) bool {
	for i := range dst {
		hi, ok1 := nibble(s[2*i])
		lo, ok2 := nibble(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func nibble(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
