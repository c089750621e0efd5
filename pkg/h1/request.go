package h1

import "bytes"

// Request is a parsed request head. Spans refer to the buffer given to
// ParseRequest. Reset it with Reset before reusing it for another head.
type Request struct {
	Method, Target Span
	// Minor is the minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
	Minor int
	// Fields are the field lines in order; cap grows once and is kept.
	Fields []Field
	// Host is the Host field's value; HasHost reports whether there was one.
	Host    Span
	HasHost bool
	// ContentLength is the body length; -1 when the request has no
	// Content-Length (then its body is empty unless Chunked).
	ContentLength int64
	// Chunked reports Transfer-Encoding: chunked (RFC 9112 §7.1).
	Chunked bool
	// Close reports that the connection ends after this exchange:
	// "Connection: close", or HTTP/1.0 without "Connection: keep-alive"
	// (RFC 9112 §9.3).
	Close bool
	// Upgrade and Expect report those fields (RFC 9110 §7.8, §10.1.1).
	Upgrade, Expect bool
	// Len is the length of the head, final CRLF included.
	Len int
}

// Reset empties r, keeping the Fields array for reuse.
func (r *Request) Reset() {
	f := r.Fields[:0]
	*r = Request{Fields: f, ContentLength: -1}
}

// Field returns the value of the first field of kind k, and whether
// there is one.
func (r *Request) Field(k Kind) (Span, bool) { return firstField(r.Fields, k) }

func firstField(fields []Field, k Kind) (Span, bool) {
	for _, f := range fields {
		if f.Kind == k {
			return f.Value, true
		}
	}
	return Span{}, false
}

// ParseRequest parses the request head at the start of buf into r (which
// must be Reset). It returns ErrNeedMore when buf holds no complete head
// and may still become one within lim, and an *Error otherwise when the
// head is not acceptable.
func ParseRequest(buf []byte, r *Request, lim Limits) error {
	max := lim.head()
	end := bytes.Index(buf, crlfcrlf)
	if end < 0 {
		if len(buf) >= max {
			if bytes.IndexByte(buf, '\n') < 0 {
				return &Error{Status: 414, Reason: "request line too long"}
			}
			return &Error{Status: 431, Reason: "request head too large"}
		}
		// A line ending in a bare LF never completes a head here:
		// answer now rather than when the read times out.
		if err := checkLines(buf); err != nil {
			return err
		}
		return ErrNeedMore
	}
	if end+4 > max {
		return &Error{Status: 431, Reason: "request head too large"}
	}
	r.Len = end + 4
	head := buf[:end+2] // each line with its CRLF
	nl := bytes.Index(head, crlf)
	if err := parseRequestLine(buf, nl, r); err != nil {
		return err
	}
	if err := parseFields(buf, nl+2, end+2, &r.Fields, lim.fields()); err != nil {
		return err
	}
	return r.interpret(buf)
}

var (
	crlf     = []byte("\r\n")
	crlfcrlf = []byte("\r\n\r\n")
)

// checkLines rejects an incomplete head whose complete lines already
// show it can never be accepted (a bare LF or CR, a control character).
func checkLines(buf []byte) error {
	for i, c := range buf {
		switch {
		case c == '\n' && (i == 0 || buf[i-1] != '\r'):
			return bad("bare LF")
		case c == '\r' && i+1 < len(buf) && buf[i+1] != '\n':
			return bad("bare CR")
		case c == 0:
			return bad("NUL in head")
		}
	}
	return nil
}

// parseRequestLine parses "method SP request-target SP HTTP-version"
// (RFC 9112 §3), buf[:nl] being the line.
func parseRequestLine(buf []byte, nl int, r *Request) error {
	line := buf[:nl]
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return bad("malformed request line")
	}
	for _, c := range line[:sp1] {
		if !tchar[c] {
			return bad("method is not a token")
		}
	}
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return bad("malformed request line")
	}
	for _, c := range rest[:sp2] {
		// RFC 9112 §3.2: no whitespace; controls and non-ASCII are
		// not URI characters (RFC 3986).
		if c <= 0x20 || c >= 0x7f {
			return bad("invalid character in request target")
		}
	}
	ver := rest[sp2+1:]
	if len(ver) != 8 || string(ver[:5]) != "HTTP/" || ver[6] != '.' || !digit(ver[5]) || !digit(ver[7]) {
		return bad("malformed HTTP version")
	}
	if ver[5] != '1' || (ver[7] != '0' && ver[7] != '1') {
		return &Error{Status: 505, Reason: "HTTP version not supported"}
	}
	r.Method = Span{0, int32(sp1)}
	r.Target = Span{int32(sp1 + 1), int32(sp1 + 1 + sp2)}
	r.Minor = int(ver[7] - '0')
	return nil
}

func digit(c byte) bool { return '0' <= c && c <= '9' }

// parseFields parses the field lines in buf[from:to], each ending in
// CRLF (RFC 9112 §5).
func parseFields(buf []byte, from, to int, fields *[]Field, maxFields int) error {
	i := from
	for i < to {
		nl := bytes.Index(buf[i:to], crlf)
		line := buf[i : i+nl]
		if len(*fields) == maxFields {
			return &Error{Status: 431, Reason: "too many header fields"}
		}
		f, err := parseField(line, i)
		if err != nil {
			return err
		}
		*fields = append(*fields, f)
		i += nl + 2
	}
	return nil
}

// parseField parses one field line starting at offset off of the buffer.
func parseField(line []byte, off int) (Field, error) {
	if len(line) == 0 {
		return Field{}, bad("empty field line")
	}
	if line[0] == ' ' || line[0] == '\t' {
		// RFC 9112 §5.2: obs-fold is rejected with 400.
		return Field{}, bad("obsolete line folding")
	}
	colon := -1
	for j, c := range line {
		if c == ':' {
			colon = j
			break
		}
		if !tchar[c] {
			// RFC 9112 §5.1: no whitespace between name and colon.
			return Field{}, bad("invalid header field name")
		}
	}
	if colon <= 0 {
		return Field{}, bad("malformed header field")
	}
	vs, ve := colon+1, len(line)
	for vs < ve && (line[vs] == ' ' || line[vs] == '\t') {
		vs++
	}
	for ve > vs && (line[ve-1] == ' ' || line[ve-1] == '\t') {
		ve--
	}
	for _, c := range line[vs:ve] {
		if !fieldValueByte(c) {
			return Field{}, bad("invalid character in header field value")
		}
	}
	return Field{
		Name:  Span{int32(off), int32(off + colon)},
		Value: Span{int32(off + vs), int32(off + ve)},
		Kind:  kindOf(line[:colon]),
	}, nil
}

// interpret derives framing and connection handling from the fields
// (RFC 9112 §6, §9.3).
func (r *Request) interpret(buf []byte) error {
	keepAlive := false
	var te, cl Span
	hasTE := false
	for _, f := range r.Fields {
		v := f.Value.Bytes(buf)
		switch f.Kind {
		case KindHost:
			if r.HasHost {
				// RFC 9112 §3.2: more than one Host is a 400.
				return bad("more than one Host field")
			}
			if !validHost(v) {
				return bad("invalid Host field")
			}
			r.Host, r.HasHost = f.Value, true
		case KindContentLength:
			n, ok := parseLength(v)
			if !ok {
				return bad("invalid Content-Length")
			}
			if r.ContentLength >= 0 && string(cl.Bytes(buf)) != string(v) {
				// RFC 9112 §6.3 (5): differing values are unrecoverable
				// (compared as text, as net/http does: "01" and "1"
				// differ).
				return bad("differing Content-Length values")
			}
			r.ContentLength, cl = n, f.Value
		case KindTransferEncoding:
			if hasTE {
				return &Error{Status: 501, Reason: "more than one Transfer-Encoding field"}
			}
			te, hasTE = f.Value, true
		case KindConnection:
			if HasToken(v, "close") {
				r.Close = true
			}
			if HasToken(v, "keep-alive") {
				keepAlive = true
			}
		case KindUpgrade:
			r.Upgrade = true
		case KindExpect:
			r.Expect = true
		}
	}
	if r.Minor == 1 && !r.HasHost {
		return bad("missing Host field") // RFC 9112 §3.2
	}
	if hasTE {
		switch {
		case r.Minor == 0:
			// RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means the
			// framing is faulty.
			return bad("Transfer-Encoding in an HTTP/1.0 request")
		case r.ContentLength >= 0:
			// RFC 9112 §6.1 permits rejecting both; ambiguity between
			// two parsers is how requests are smuggled.
			return bad("both Content-Length and Transfer-Encoding")
		case !EqualFold(te.Bytes(buf), "chunked"):
			// RFC 9112 §6.1: chunked must be the final coding; we
			// decode no other coding (501, as net/http).
			return &Error{Status: 501, Reason: "unsupported Transfer-Encoding"}
		}
		r.Chunked = true
	}
	if r.Minor == 0 && !keepAlive {
		r.Close = true
	}
	return nil
}

// parseLength parses a Content-Length value: 1*DIGIT, at most 18 digits
// (RFC 9110 §8.6).
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if !digit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// validHost reports whether v is an acceptable Host value: the
// characters of a URI host and port (RFC 3986 §3.2.2), as
// golang.org/x/net/http/httpguts.ValidHostHeader allows.
func validHost(v []byte) bool {
	for _, c := range v {
		if !hostByte[c] {
			return false
		}
	}
	return true
}

var hostByte = alnumAnd("!$%&'()*+,-.:;=[]_~")

// ValidOriginForm reports whether target is an origin-form request target
// (RFC 9112 §3.2.1: absolute-path [ "?" query ]) whose percent-encodings
// are well formed (RFC 3986 §2.1). The fast path serves only these.
func ValidOriginForm(target []byte) bool {
	if len(target) == 0 || target[0] != '/' {
		return false
	}
	for i := 0; i < len(target); i++ {
		switch c := target[i]; {
		case c == '%':
			if i+2 >= len(target) || unhex(target[i+1]) < 0 || unhex(target[i+2]) < 0 {
				return false
			}
			i += 2
		case c == '#':
			return false
		}
	}
	return true
}
