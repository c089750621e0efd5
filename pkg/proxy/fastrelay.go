package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/handoff-proxy/handoff/pkg/h1"
	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// maxResponseHead bounds a response head from a target (as
// MaxResponseHeaderBytes does for the net/http path).
const maxResponseHead = 64 << 10

// readResponseHead reads the final response head into req.Resp, passing
// informational (1xx) heads to inform (RFC 9110 §15.2: not to HTTP/1.0
// clients). The head stays in br's buffer (not discarded) for relay.
func readResponseHead(br *bufio.Reader, req *FastRequest, inform func([]byte) error) (*h1.Response, error) {
	res := &req.Resp
	for {
		res.Reset()
		n := br.Buffered()
		if n == 0 {
			n = 1
		}
		for {
			b, err := br.Peek(n)
			if len(b) == 0 && err != nil {
				if errors.Is(err, io.EOF) {
					return nil, errStaleConn
				}
				return nil, err
			}
			perr := h1.ParseResponse(b, res, min(maxResponseHead, br.Size()))
			if perr == nil {
				break
			}
			if !errors.Is(perr, h1.ErrNeedMore) {
				return nil, perr
			}
			if err != nil {
				return nil, io.ErrUnexpectedEOF
			}
			// Peek(1) on an empty buffer reads all the target sent:
			// parse that next, not one byte more.
			n = max(len(b)+1, br.Buffered())
		}
		if res.Status >= 200 {
			return res, nil
		}
		if res.Status == http.StatusSwitchingProtocols {
			return nil, errors.New("101 Switching Protocols to a request without Upgrade")
		}
		head, _ := br.Peek(res.Len)
		if req.Head.Minor == 1 {
			if err := inform(head); err != nil {
				return nil, err
			}
		}
		_, _ = br.Discard(res.Len)
	}
}

// relay writes the response in req.Resp (head in uc.br) to the client
// and its body after it, then returns uc to the idle pool when the
// target keeps it open.
func (f *Fast) relay(req *FastRequest, res *h1.Response, uc *h1Conn, t *upstream.Target) FastResult {
	head, _ := uc.br.Peek(res.Len)
	ex := &req.ex
	bodyless := h1.BodyLess(isHead(req), res.Status)
	var mode int // 0 none, 1 length, 2 chunked to client, 3 until close
	switch {
	case bodyless:
	case res.ContentLength >= 0:
		mode = 1
	case req.Head.Minor == 1:
		mode = 2
	default:
		mode = 3
	}
	keepAlive := req.KeepAlive && mode != 3
	b := f.appendResponseHead(req.Scratch[:0], req, ex, res, head, bodyless, mode, keepAlive)
	_, _ = uc.br.Discard(res.Len)
	out := FastResult{Status: res.Status, Reusable: keepAlive}
	var upErr, cliErr error
	deferred := req.Defer && keepAlive && req.rw == nil
	switch {
	case mode == 0 && deferred:
		out.Pending = b
	case mode == 0:
		_, cliErr = req.Client.Write(b)
	case mode == 1 && deferred && res.ContentLength <= smallBody && int64(uc.br.Buffered()) >= res.ContentLength:
		p, _ := uc.br.Peek(int(res.ContentLength))
		b = append(b, p...)
		_, _ = uc.br.Discard(len(p))
		out.Bytes, out.Pending = res.ContentLength, b
	case mode == 1:
		out.Bytes, b, upErr, cliErr = copyLength(req.Client, uc, b, res.ContentLength, &f.buffers, &req.iov)
	default:
		out.Bytes, b, upErr, cliErr = f.copyStream(req.Client, uc, b, res.Chunked, mode == 2, nil)
	}
	out.Scratch = b
	f.done(req, res, uc, t, &out, bodyless, upErr, cliErr)
	return out
}

// done ends a relayed exchange: the target connection goes back to the
// idle pool when the response was read whole and the target keeps it
// open; failures are counted against whoever caused them.
func (f *Fast) done(req *FastRequest, res *h1.Response, uc *h1Conn, t *upstream.Target, out *FastResult, bodyless bool, upErr, cliErr error) {
	if req.unwatch() && cliErr == nil {
		// The client went away: its cancellation may have interrupted
		// the read from the target, which is not the target's fault;
		// the connection is closed below either way.
		cliErr = context.Canceled
	}
	switch {
	case cliErr != nil:
		uc.c.Close()
		req.Info.ClientGone = true
		out.Status, out.Reusable = StatusClientClosedRequest, false
	case upErr != nil:
		uc.c.Close()
		out.Reusable = false
		f.h.log.Warn("upstream response body failed", "upstream", f.h.pool.Name, "target", t.Address, "error", upErr)
		f.h.obs.UpstreamError(f.h.pool.Name, t.Address, KindBody)
	case res.Close || (!bodyless && res.ContentLength < 0 && !res.Chunked):
		uc.c.Close()
	case uc.br.Buffered() > 0:
		// The target sent more than the response it framed (a body
		// longer than its Content-Length, a body after a 304): read
		// as the next response, it would be garbage. net/http's
		// Transport drops such a connection too ("Unsolicited
		// response received on idle HTTP channel").
		uc.c.Close()
	default:
		f.conns.put(uc, f.now())
	}
}

// appendResponseHead appends the head sent to the client: the target's
// status and fields without hop-by-hop ones, with this proxy in Via, the
// request id, a Date when the target sent none, and the framing.
func (f *Fast) appendResponseHead(b []byte, req *FastRequest, ex *exchange, res *h1.Response, head []byte, bodyless bool, mode int, keepAlive bool) []byte {
	b = appendStatusLine(b, req.Head.Minor, res.Status, res.Reason.Bytes(head))
	conn, hasConn := res.Field(h1.KindConnection)
	for _, fl := range res.Fields {
		if forwardedResponseField(fl, head, conn, hasConn, bodyless && res.Status != http.StatusNoContent) {
			b = append(b, head[fl.Name.Start:fl.Value.End]...)
			b = append(b, '\r', '\n')
		}
	}
	b = append(b, "Via: "...)
	b = f.appendVia(b, res, head)
	b = append(b, "\r\nX-Request-Id: "...)
	b = append(b, ex.id...)
	b = append(b, '\r', '\n')
	if !res.HasDate {
		b = f.date.appendTo(b, f.now())
	}
	switch mode {
	case 1:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, res.ContentLength, 10)
		b = append(b, '\r', '\n')
	case 2:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	switch {
	case !keepAlive && req.Head.Minor == 0:
		// closing is what HTTP/1.0 does without keep-alive
	case !keepAlive:
		b = append(b, "Connection: close\r\n"...)
	case req.Head.Minor == 0:
		// RFC 9112 §C.2.2: an HTTP/1.0 connection persists only when
		// both ends say keep-alive.
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	return append(b, '\r', '\n')
}

// forwardedResponseField reports whether a field of the target's
// response goes on to the client: not hop-by-hop ones (RFC 9110 §7.6.1,
// also those its Connection field names), not Via and X-Request-Id
// (rewritten), not Content-Length unless keepLength (the proxy frames the
// body itself; a bodyless answer to HEAD or a 304 keeps the target's).
func forwardedResponseField(fl h1.Field, head []byte, conn h1.Span, hasConn, keepLength bool) bool {
	switch {
	case fl.Kind == h1.KindTrailer:
		return true
	case fl.Kind.HopByHop(), fl.Kind == h1.KindXRequestID, fl.Kind == h1.KindVia:
		return false
	case fl.Kind == h1.KindContentLength:
		return keepLength
	case fl.Kind == h1.KindOther && hasConn:
		return !h1.HasToken(conn.Bytes(head), lower(fl.Name.Bytes(head)))
	}
	return true
}

// appendVia appends the Via value sent to the client: the target's list
// with this proxy appended (RFC 9110 §7.6.3).
func (f *Fast) appendVia(b []byte, res *h1.Response, head []byte) []byte {
	for _, fl := range res.Fields {
		if fl.Kind == h1.KindVia && fl.Value.Len() > 0 {
			b = append(b, fl.Value.Bytes(head)...)
			b = append(b, ", "...)
		}
	}
	b = append(b, '1', '.', byte('0'+res.Minor), ' ')
	return append(b, f.h.fwd.via...)
}

// appendStatusLine appends the status line in the client's version, as
// net/http answers (RFC 9110 §2.5 allows a server to answer HTTP/1.0
// requests in 1.0).
func appendStatusLine(b []byte, minor, code int, reason []byte) []byte {
	if minor == 0 {
		b = append(b, "HTTP/1.0 "...)
	} else {
		b = append(b, "HTTP/1.1 "...)
	}
	return appendStatus(b, code, reason)
}

// appendStatus appends "code reason\r\n": the standard reason phrase, or
// the target's for a code without one.
func appendStatus(b []byte, code int, reason []byte) []byte {
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	if t := http.StatusText(code); t != "" {
		b = append(b, t...)
	} else {
		b = append(b, reason...)
	}
	return append(b, '\r', '\n')
}

// smallBody is the most body bytes copied behind the head for one
// write(2); more go beside it in a writev(2).
const smallBody = 4 << 10

// vectorWriter writes up to three buffers in one writev(2) (a *rawsock.Conn:
// net.Buffers only does that for the net package's own connections).
type vectorWriter interface {
	Writev(a, b, c []byte) (int, error)
}

// copyLength writes head and then n body bytes from uc to w: what is
// buffered in one write with the head, the rest straight from the socket.
func copyLength(w io.Writer, uc *h1Conn, head []byte, n int64, buffers *sync.Pool, iov *net.Buffers) (written int64, buf []byte, upErr, cliErr error) {
	k := int64(uc.br.Buffered())
	if k > n {
		k = n
	}
	var err error
	switch {
	case k > smallBody:
		// Head and buffered body in one writev(2), without copying the
		// body into the head's buffer.
		p, _ := uc.br.Peek(int(k))
		if vw, ok := w.(vectorWriter); ok {
			_, err = vw.Writev(head, p, nil)
		} else {
			*iov = append((*iov)[:0], head, p)
			_, err = iov.WriteTo(w)
		}
		_, _ = uc.br.Discard(int(k))
	case k > 0:
		p, _ := uc.br.Peek(int(k))
		head = append(head, p...)
		_, _ = uc.br.Discard(int(k))
		_, err = w.Write(head)
	default:
		_, err = w.Write(head)
	}
	if err != nil {
		return 0, head, nil, err
	}
	written = k
	if left := n - k; left > 0 {
		uc.disarm()
		// A user-space copy through a pooled buffer: measured cheaper
		// than splice(2) for bodies of some 100 KiB (a pipe per copy,
		// two calls per chunk).
		bp := buffers.Get().(*[]byte)
		defer buffers.Put(bp)
		buf := *bp
		for left > 0 {
			r, rerr := uc.s.Read(buf[:min(int64(len(buf)), left)])
			if r > 0 {
				if _, werr := w.Write(buf[:r]); werr != nil {
					return written, head, nil, werr
				}
				written += int64(r)
				left -= int64(r)
			}
			if rerr != nil && left > 0 {
				if rerr == io.EOF {
					rerr = io.ErrUnexpectedEOF // the target closed early
				}
				return written, head, rerr, nil
			}
		}
	}
	return written, head, nil, nil
}

// copyStream relays a chunked or close-delimited body, re-framing it
// chunked for HTTP/1.1 clients. Bytes already received are written
// together; the output is flushed whenever the next read would wait, so
// that streams (server-sent events) are not held back. Trailer fields of
// a chunked body go to the client in its last chunk, or into keep when
// not nil. It returns out, grown, for the caller to keep.
func (f *Fast) copyStream(w io.Writer, uc *h1Conn, out []byte, chunkedIn, chunkedOut bool, keep *[]byte) (written int64, _ []byte, upErr, cliErr error) {
	uc.disarm()
	var src io.Reader = uc.br
	var cr h1.ChunkedReader
	var trailers []byte
	if chunkedIn {
		cr.Reset(uc.br)
		cr.Trailers = keep
		if chunkedOut {
			cr.Trailers = &trailers
		}
		src = &cr
	}
	vw, _ := w.(vectorWriter)
	bp := f.buffers.Get().(*[]byte)
	defer f.buffers.Put(bp)
	buf := *bp
	half := len(buf) / 2
	for {
		n, err := src.Read(buf[:half])
		done := err == io.EOF
		if err != nil && !done {
			if len(out) > 0 {
				_, _ = w.Write(out)
			}
			return written, out, err, nil
		}
		written += int64(n)
		if n >= smallBody && vw != nil {
			// A large piece leaves from buf in one writev(2) with what
			// is pending and its framing, rather than being copied
			// into out (the tail is built in buf's unused half).
			tail := buf[half:half]
			if chunkedOut {
				out = h1.AppendChunkHeader(out, n)
				tail = append(tail, '\r', '\n')
				if done {
					tail = appendLastChunk(tail, trailers)
				}
			}
			if _, werr := vw.Writev(out, buf[:n], tail); werr != nil {
				return written, out, nil, werr
			}
			out = out[:0]
			if done {
				return written, out, nil, nil
			}
			continue
		}
		if n > 0 {
			if chunkedOut {
				out = h1.AppendChunkHeader(out, n)
				out = append(out, buf[:n]...)
				out = append(out, '\r', '\n')
			} else {
				out = append(out, buf[:n]...)
			}
		}
		if done && chunkedOut {
			out = appendLastChunk(out, trailers)
		}
		if done || uc.br.Buffered() == 0 || len(out) >= half {
			if _, werr := w.Write(out); werr != nil {
				return written, out, nil, werr
			}
			out = out[:0]
		}
		if done {
			return written, out, nil, nil
		}
	}
}

// appendLastChunk appends the last chunk and the trailer section (RFC
// 9112 §7.1).
func appendLastChunk(b, trailers []byte) []byte {
	b = append(b, "0\r\n"...)
	b = append(b, trailers...)
	return append(b, "\r\n"...)
}

// dateCache holds the Date field line, rebuilt once a second (RFC 9110
// §6.6.1: a response without a Date gets one, as net/http adds it).
type dateCache struct{ cur atomic.Pointer[dateValue] }

type dateValue struct {
	sec int64
	b   []byte
}

func (c *dateCache) appendTo(b []byte, now time.Time) []byte {
	sec := now.Unix()
	d := c.cur.Load()
	if d == nil || d.sec != sec {
		d = &dateValue{sec: sec, b: now.UTC().AppendFormat([]byte("Date: "), http.TimeFormat)}
		d.b = append(d.b, '\r', '\n')
		c.cur.Store(d)
	}
	return append(b, d.b...)
}
