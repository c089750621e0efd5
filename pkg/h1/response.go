package h1

import "bytes"

// Response is a parsed response head. Spans refer to the buffer given to
// ParseResponse. Reset it with Reset before reusing it.
type Response struct {
	// Status is the status code; Reason the reason phrase (may be empty).
	Status int
	Reason Span
	Minor  int
	Fields []Field
	// ContentLength is the body length; -1 when there is none.
	ContentLength int64
	Chunked       bool
	// Close reports that the server closes the connection after this
	// response (RFC 9112 §9.3).
	Close bool
	// HasDate reports a Date field (RFC 9110 §6.6.1).
	HasDate bool
	Len     int
}

// Reset empties r, keeping the Fields array for reuse.
func (r *Response) Reset() {
	f := r.Fields[:0]
	*r = Response{Fields: f, ContentLength: -1}
}

// Field returns the value of the first field of kind k, and whether
// there is one.
func (r *Response) Field(k Kind) (Span, bool) { return firstField(r.Fields, k) }

// maxResponseFields bounds the fields of a response head; a backend is
// trusted more than a client, but not without limit.
const maxResponseFields = 1000

// ParseResponse parses the response head at the start of buf into r
// (which must be Reset). ErrNeedMore means more bytes are needed and
// max was not reached; an *Error means the head is not acceptable (the
// proxy answers 502).
func ParseResponse(buf []byte, r *Response, max int) error {
	end := bytes.Index(buf, crlfcrlf)
	if end < 0 {
		if len(buf) >= max {
			return bad("response head too large")
		}
		return ErrNeedMore
	}
	r.Len = end + 4
	nl := bytes.Index(buf[:end+2], crlf)
	line := buf[:nl]
	// RFC 9112 §4: HTTP-version SP 3DIGIT SP [reason-phrase]; a missing
	// SP after the code is tolerated as most clients do.
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || (line[7] != '0' && line[7] != '1') || line[8] != ' ' ||
		!digit(line[9]) || !digit(line[10]) || !digit(line[11]) || (len(line) > 12 && line[12] != ' ') {
		return bad("malformed status line")
	}
	r.Minor = int(line[7] - '0')
	r.Status = int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
	if r.Status < 100 {
		return bad("malformed status code")
	}
	if len(line) > 13 {
		for _, c := range line[13:] {
			if !fieldValueByte(c) {
				return bad("invalid character in reason phrase")
			}
		}
		r.Reason = Span{13, int32(nl)}
	}
	if err := parseFields(buf, nl+2, end+2, &r.Fields, maxResponseFields); err != nil {
		return err
	}
	return r.interpret(buf)
}

func (r *Response) interpret(buf []byte) error {
	keepAlive := false
	hasTE := false
	for _, f := range r.Fields {
		v := f.Value.Bytes(buf)
		switch f.Kind {
		case KindContentLength:
			n, ok := parseLength(v)
			if !ok {
				return bad("invalid Content-Length in response")
			}
			if r.ContentLength >= 0 && r.ContentLength != n {
				return bad("differing Content-Length values in response")
			}
			r.ContentLength = n
		case KindTransferEncoding:
			if hasTE || !EqualFold(v, "chunked") {
				// RFC 9112 §6.3 (4): a coding other than a final chunked
				// is read until close; we do not decode such bodies.
				return bad("unsupported Transfer-Encoding in response")
			}
			hasTE = true
		case KindConnection:
			if HasToken(v, "close") {
				r.Close = true
			}
			if HasToken(v, "keep-alive") {
				keepAlive = true
			}
		case KindDate:
			r.HasDate = true
		}
	}
	if hasTE {
		// RFC 9112 §6.3 (3): Transfer-Encoding overrides Content-Length,
		// and the connection must not be reused after such a message.
		if r.ContentLength >= 0 {
			r.Close = true
		}
		r.Chunked, r.ContentLength = true, -1
	}
	if r.Minor == 0 && !keepAlive {
		r.Close = true
	}
	return nil
}

// BodyLess reports whether a response with status to a request with
// method has no body whatever its fields say (RFC 9112 §6.3 (1)).
func BodyLess(head bool, status int) bool {
	return head || status < 200 || status == 204 || status == 304
}
