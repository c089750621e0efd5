package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/handoff-proxy/handoff/pkg/clientip"
	"github.com/handoff-proxy/handoff/pkg/h1"
	"github.com/handoff-proxy/handoff/pkg/reqinfo"
	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// This file serves requests that net/http has read (HTTP/2, HTTP/1.1
// over TLS, connections the fast path handed over) with Fast's forwarder
// instead of ReverseProxy and net/http's Transport: the request is
// written to the target over Fast's keep-alive pool on the handler's own
// goroutine, without the Transport's per-connection reader and writer
// goroutines and the hand-offs between them (the larger part of the
// CPU an HTTP/2 request cost). The response goes to the
// http.ResponseWriter, so everything net/http and the middleware around
// the handler do stays as it is.

// netState is what a ServeHTTP request through Fast keeps besides a
// FastRequest: pooled per Fast, so that the buffers are reused.
type netState struct {
	head h1.Request
	info reqinfo.Info
}

// ServeHTTP forwards r through Fast when nothing in it needs
// ReverseProxy: no Upgrade, no Expect, a body of known length, an
// origin-form target, no per-route limits. It reports false, having
// written nothing, otherwise.
func (f *Fast) ServeHTTP(w http.ResponseWriter, r *http.Request) bool {
	if !netEligible(r) {
		return false
	}
	req := f.netReqs.Get().(*FastRequest)
	reuse := true
	defer func() {
		if reuse {
			f.netReqs.Put(req)
		}
	}()
	b, n := appendNetHead(req.netBuf[:0], r)
	req.netBuf = b
	st := req.net
	st.head.Reset()
	// The head was written from a request net/http accepted: parsing it
	// again gives Fast its view (and refuses what HTTP/1.1 cannot carry).
	if err := h1.ParseRequest(b, &st.head, h1.Limits{MaxHeadBytes: len(b), MaxFields: n}); err != nil ||
		!h1.ValidOriginForm(st.head.Target.Bytes(b)) {
		return false
	}
	req.Buf, req.Head = b, &st.head
	req.Peer, req.TLS = clientip.Peer(r.RemoteAddr), r.TLS != nil
	req.Body, req.Buffered = nil, nil
	if r.ContentLength > 0 {
		req.Body = r.Body
		if f.h.bodyIdle > 0 {
			req.Body = &idleBody{ReadCloser: r.Body, rc: http.NewResponseController(w), idle: f.h.bodyIdle}
		}
	}
	req.Client, req.rw, req.KeepAlive, req.abort = nil, w, true, false
	req.proto = viaProto(r)
	req.Info = reqinfo.From(r.Context())
	if req.Info == nil {
		st.info = reqinfo.Info{}
		req.Info = &st.info
	}
	req.canceled.Store(false)
	stop := context.AfterFunc(r.Context(), req.cancel)
	res := f.Serve(req)
	// When cancel ran or is running, req is left to it rather than
	// handed to another request.
	reuse = stop()
	req.Scratch = res.Scratch
	req.rw, req.Body, req.Info = nil, nil, nil // not kept alive by the pool
	if req.abort {
		// As ReverseProxy does when a response body breaks off: the
		// client must not take a truncated body for a whole one.
		panic(http.ErrAbortHandler)
	}
	return true
}

// netEligible reports whether Fast can forward r: what only ReverseProxy
// does is upgrades (WebSocket), 100-continue, bodies of unknown length
// (chunked), request trailers, CONNECT and the limits of a route.
func netEligible(r *http.Request) bool {
	if r.Method == http.MethodConnect || r.ContentLength < 0 || len(r.TransferEncoding) > 0 || len(r.Trailer) > 0 ||
		r.Host == "" || limitsFrom(r.Context()) != (Limits{}) {
		return false
	}
	_, upgrade := r.Header["Upgrade"]
	_, expect := r.Header["Expect"]
	return !upgrade && !expect
}

// appendNetHead writes r as an HTTP/1.1 head: request line with the
// (possibly rewritten) URL, Host, the fields net/http parsed, and the
// body's length. It returns the number of field lines.
func appendNetHead(b []byte, r *http.Request) ([]byte, int) {
	b = append(b, r.Method...)
	b = append(b, ' ')
	b = append(b, r.URL.RequestURI()...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, r.Host...)
	b = append(b, '\r', '\n')
	n := 1
	for k, vs := range r.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding":
			continue
		}
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ':', ' ')
			b = append(b, v...)
			b = append(b, '\r', '\n')
			n++
		}
	}
	if r.ContentLength > 0 || (r.ContentLength == 0 && bodyMethod(r.Method)) {
		// As net/http's Transport: an empty POST says so (RFC 9110
		// §8.6).
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, r.ContentLength, 10)
		b = append(b, '\r', '\n')
		n++
	}
	return append(b, '\r', '\n'), n
}

func bodyMethod(m string) bool {
	return m == http.MethodPost || m == http.MethodPut || m == http.MethodPatch
}

// relayNet writes the response in req.Resp (head in uc.br) to req.rw:
// the fields ReverseProxy would copy, Via and X-Request-Id, then the body,
// flushed as it arrives when it is a stream, with the target's trailer
// fields after it.
func (f *Fast) relayNet(req *FastRequest, res *h1.Response, uc *h1Conn, t *upstream.Target) FastResult {
	w := req.rw
	head, _ := uc.br.Peek(res.Len)
	bodyless := h1.BodyLess(isHead(req), res.Status)
	hdr := w.Header()
	conn, hasConn := res.Field(h1.KindConnection)
	// One string for the head and one array for the values: the
	// fields are slices of them (a string and a slice per field cost
	// 15 % of the allocations of an HTTP/2 request).
	hs := string(head[:res.Len])
	vals := make([]string, len(res.Fields))
	for i, fl := range res.Fields {
		if !forwardedResponseField(fl, head, conn, hasConn, bodyless && res.Status != http.StatusNoContent) {
			continue
		}
		k := textproto.CanonicalMIMEHeaderKey(hs[fl.Name.Start:fl.Name.End])
		vals[i] = hs[fl.Value.Start:fl.Value.End]
		if vs, ok := hdr[k]; ok {
			hdr[k] = append(vs, vals[i])
		} else {
			hdr[k] = vals[i : i+1 : i+1]
		}
	}
	hdr.Set("Via", string(f.appendVia(req.Scratch[:0], res, head)))
	hdr.Set(hdrRequestID, req.ex.id)
	if !bodyless && res.ContentLength >= 0 {
		hdr.Set("Content-Length", strconv.FormatInt(res.ContentLength, 10))
	}
	_, _ = uc.br.Discard(res.Len)
	w.WriteHeader(res.Status)
	out := FastResult{Status: res.Status, Scratch: req.Scratch}
	var upErr, cliErr error
	switch {
	case bodyless:
	case res.ContentLength >= 0:
		var cw io.Writer = w
		if eventStream(res, head) {
			cw = &flushWriter{w: w, rc: http.NewResponseController(w)}
		}
		out.Bytes, out.Scratch, upErr, cliErr = copyLength(cw, uc, req.Scratch[:0], res.ContentLength, &f.buffers, &req.iov)
	default:
		req.trailers = req.trailers[:0]
		fw := &flushWriter{w: w, rc: http.NewResponseController(w)}
		out.Bytes, out.Scratch, upErr, cliErr = f.copyStream(fw, uc, req.Scratch[:0], res.Chunked, false, &req.trailers)
		if upErr == nil && cliErr == nil {
			setTrailers(hdr, req.trailers)
		}
	}
	f.done(req, res, uc, t, &out, bodyless, upErr, cliErr)
	req.abort = upErr != nil && !req.Info.ClientGone
	return out
}

// eventStream reports a text/event-stream response, which is flushed as
// it arrives whatever its framing (as ReverseProxy does: server-sent
// events, https://html.spec.whatwg.org/multipage/server-sent-events.html).
func eventStream(res *h1.Response, head []byte) bool {
	for _, fl := range res.Fields {
		if h1.EqualFold(fl.Name.Bytes(head), "content-type") {
			v, _, _ := bytes.Cut(fl.Value.Bytes(head), []byte(";"))
			return h1.EqualFold(bytes.TrimSpace(v), "text/event-stream")
		}
	}
	return false
}

// viaProto is the protocol version r came in, as Via names it (RFC 9110
// §7.6.3: the major version alone from HTTP/2 on).
func viaProto(r *http.Request) string {
	switch {
	case r.ProtoMajor >= 2:
		return strconv.Itoa(r.ProtoMajor)
	case r.ProtoMinor == 0:
		return "1.0"
	}
	return "1.1"
}

// setTrailers announces the target's trailer fields (raw "name: value"
// lines) to net/http, which sends them after the body (RFC 9110 §6.5).
func setTrailers(hdr http.Header, raw []byte) {
	for len(raw) > 0 {
		line := raw
		if i := bytes.Index(raw, []byte("\r\n")); i >= 0 {
			line, raw = raw[:i], raw[i+2:]
		} else {
			raw = nil
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 {
			continue
		}
		hdr.Add(http.TrailerPrefix+string(name), strings.TrimSpace(string(value)))
	}
}

// informNet passes an informational response (RFC 9110 §15.2) on, as
// ReverseProxy does: its fields go out with it and not with the final
// response.
func informNet(w http.ResponseWriter, res *h1.Response, head []byte) {
	hdr := w.Header()
	for _, fl := range res.Fields {
		hdr.Add(string(fl.Name.Bytes(head)), string(fl.Value.Bytes(head)))
	}
	w.WriteHeader(res.Status)
	for _, fl := range res.Fields {
		hdr.Del(string(fl.Name.Bytes(head)))
	}
}

// flushWriter flushes every write: a streamed body is written when the
// target's next read would wait (copyStream), and must leave then.
type flushWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (fw *flushWriter) Write(p []byte) (int, error) {
	n, err := fw.w.Write(p)
	if err == nil {
		err = fw.rc.Flush()
	}
	return n, err
}

func newNetRequest() any { return &FastRequest{net: &netState{}} }

// watch makes uc the connection the client's going away interrupts, and
// reports whether it is gone already. Requests of the fast path's own
// (not through ServeHTTP) are not watched: their client's connection is
// read only between requests.
func (req *FastRequest) watch(uc *h1Conn) bool {
	if req.rw == nil {
		return false
	}
	req.cur.Store(uc)
	return req.canceled.Load()
}

// unwatch ends watch before uc is given back or closed, and reports
// whether the client went away meanwhile (then uc must not be reused:
// a deadline in the past may be set on it).
func (req *FastRequest) unwatch() bool {
	if req.rw == nil {
		return false
	}
	req.cur.Store(nil)
	return req.canceled.Load()
}

// gone reports whether a watched request's client went away.
func (req *FastRequest) gone() bool { return req.rw != nil && req.canceled.Load() }

// cancel is run by context.AfterFunc when the client goes away.
func (req *FastRequest) cancel() {
	req.canceled.Store(true)
	if uc := req.cur.Load(); uc != nil {
		uc.interrupt()
	}
}
