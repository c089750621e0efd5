package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func parse(t *testing.T, s string, lim Limits) (*Request, error) {
	t.Helper()
	r := &Request{}
	r.Reset()
	return r, ParseRequest([]byte(s), r, lim)
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		status int // 0: accepted; -1: need more
		check  func(t *testing.T, b []byte, r *Request)
	}{
		{name: "simple get", in: "GET /a?b=c HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n", check: func(t *testing.T, b []byte, r *Request) {
			if r.Method.String(b) != "GET" || r.Target.String(b) != "/a?b=c" || r.Host.String(b) != "x" || r.ContentLength != -1 || r.Close || len(r.Fields) != 2 {
				t.Errorf("got %+v", r)
			}
		}},
		{name: "post with length", in: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", check: func(t *testing.T, b []byte, r *Request) {
			if r.ContentLength != 5 || r.Len != len("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n") {
				t.Errorf("got %+v", r)
			}
		}},
		{name: "same length twice", in: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"},
		{name: "chunked", in: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n", check: func(t *testing.T, b []byte, r *Request) {
			if !r.Chunked {
				t.Error("not chunked")
			}
		}},
		{name: "http/1.0 closes", in: "GET / HTTP/1.0\r\n\r\n", check: func(t *testing.T, b []byte, r *Request) {
			if !r.Close || r.Minor != 0 {
				t.Errorf("got %+v", r)
			}
		}},
		{name: "http/1.0 keep-alive", in: "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", check: func(t *testing.T, b []byte, r *Request) {
			if r.Close {
				t.Error("closes")
			}
		}},
		{name: "connection close", in: "GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n", check: func(t *testing.T, b []byte, r *Request) {
			if !r.Close {
				t.Error("keeps open")
			}
		}},
		{name: "incomplete", in: "GET / HTTP/1.1\r\nHost: x\r\n", status: -1},
		{name: "short garbage answered at once", in: "GET /\n", status: 400},
		{name: "bare CR in incomplete head", in: "GET / HTTP/1.1\rX", status: 400},
		{name: "length and chunked", in: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400},
		{name: "differing lengths", in: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", status: 400},
		{name: "signed length", in: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\n", status: 400},
		{name: "length list", in: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\n", status: 400},
		{name: "te in http/1.0", in: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400},
		{name: "te gzip", in: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", status: 501},
		{name: "obs-fold", in: "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", status: 400},
		{name: "space before colon", in: "GET / HTTP/1.1\r\nHost: x\r\nX-A : a\r\n\r\n", status: 400},
		{name: "nul in value", in: "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", status: 400},
		{name: "bare cr in value", in: "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", status: 400},
		{name: "bare lf", in: "GET / HTTP/1.1\nHost: x\r\n\r\n", status: 400},
		{name: "missing host", in: "GET / HTTP/1.1\r\n\r\n", status: 400},
		{name: "two hosts", in: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", status: 400},
		{name: "bad host", in: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", status: 400},
		{name: "http/2.0", in: "GET / HTTP/2.0\r\nHost: a\r\n\r\n", status: 505},
		{name: "bad version", in: "GET / HTTP/1.10\r\nHost: a\r\n\r\n", status: 400},
		{name: "double space", in: "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
		{name: "control in target", in: "GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
		{name: "method not token", in: "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parse(t, tc.in, Limits{})
			var he *Error
			switch {
			case tc.status == 0 && err != nil:
				t.Fatalf("rejected: %v", err)
			case tc.status == -1 && !errors.Is(err, ErrNeedMore):
				t.Fatalf("got %v, want ErrNeedMore", err)
			case tc.status > 0 && (!errors.As(err, &he) || he.Status != tc.status):
				t.Fatalf("got %v, want status %d", err, tc.status)
			}
			if tc.check != nil {
				tc.check(t, []byte(tc.in), r)
			}
		})
	}
}

func TestParseRequestLimits(t *testing.T) {
	head := func(n int) string {
		s := "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: "
		return s + strings.Repeat("a", n-len(s)-4) + "\r\n\r\n"
	}
	tests := []struct {
		name   string
		in     string
		lim    Limits
		status int
	}{
		{name: "exactly the limit", in: head(1000), lim: Limits{MaxHeadBytes: 1000}},
		{name: "one over the limit", in: head(1001), lim: Limits{MaxHeadBytes: 1000}, status: 431},
		{name: "incomplete over the limit", in: head(1001)[:1000], lim: Limits{MaxHeadBytes: 1000}, status: 431},
		{name: "long request line", in: "GET /" + strings.Repeat("a", 2000), lim: Limits{MaxHeadBytes: 1000}, status: 414},
		{name: "100 fields", in: "GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("a: b\r\n", 99) + "\r\n"},
		{name: "101 fields", in: "GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("a: b\r\n", 100) + "\r\n", status: 431},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, tc.in, tc.lim)
			var he *Error
			if tc.status == 0 && err != nil || tc.status > 0 && (!errors.As(err, &he) || he.Status != tc.status) {
				t.Fatalf("got %v, want status %d", err, tc.status)
			}
		})
	}
}

func TestParseResponse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		bad     bool
		status  int
		length  int64
		chunked bool
		close   bool
	}{
		{name: "length", in: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", status: 200, length: 3},
		{name: "no reason", in: "HTTP/1.1 204\r\n\r\n", status: 204, length: -1},
		{name: "chunked and length closes", in: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", status: 200, length: -1, chunked: true, close: true},
		{name: "http/1.0", in: "HTTP/1.0 200 OK\r\n\r\n", status: 200, length: -1, close: true},
		{name: "gzip te", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", bad: true},
		{name: "differing lengths", in: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", bad: true},
		{name: "garbage", in: "HTTP/1.1 2x0 OK\r\n\r\n", bad: true},
		{name: "header injection", in: "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r Response
			r.Reset()
			err := ParseResponse([]byte(tc.in), &r, 1<<16)
			if tc.bad {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != tc.status || r.ContentLength != tc.length || r.Chunked != tc.chunked || r.Close != tc.close {
				t.Errorf("got %+v", r)
			}
		})
	}
}

func TestChunkedReader(t *testing.T) {
	tests := []struct {
		name, in, want string
		trailers       string
		bad            bool
	}{
		{name: "two chunks", in: "3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n", want: "abcde"},
		{name: "trailers", in: "1\r\na\r\n0\r\nX-T: 1\r\n\r\n", want: "a", trailers: "X-T: 1\r\n"},
		{name: "uppercase hex", in: "A\r\n0123456789\r\n0\r\n\r\n", want: "0123456789"},
		{name: "missing crlf", in: "3\r\nabcX\r\n0\r\n\r\n", bad: true},
		{name: "bad size", in: "g\r\nabc\r\n0\r\n\r\n", bad: true},
		{name: "negative size", in: "-1\r\na\r\n0\r\n\r\n", bad: true},
		{name: "overflow", in: "1000000000000000\r\n", bad: true},
		{name: "bare lf", in: "3\nabc\r\n0\r\n\r\n", bad: true},
		{name: "truncated", in: "3\r\nab", bad: true},
		{name: "space in size", in: "3 x\r\nabc\r\n0\r\n\r\n", bad: true},
		{name: "bad trailer", in: "0\r\nX T: 1\r\n\r\n", bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var tr []byte
			c := NewChunkedReader(bufio.NewReader(strings.NewReader(tc.in)))
			c.Trailers = &tr
			got, err := io.ReadAll(c)
			if tc.bad {
				if err == nil {
					t.Fatalf("accepted: %q", got)
				}
				return
			}
			if err != nil || string(got) != tc.want || string(tr) != tc.trailers {
				t.Fatalf("got %q %q %v", got, tr, err)
			}
		})
	}
}

// FuzzDifferential checks that every request head ParseRequest accepts
// is accepted by net/http's ReadRequest with the same method, target,
// version, host, framing and connection handling.
func FuzzDifferential(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
		"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"GET /%41?x HTTP/1.1\r\nHost: [::1]:80\r\nConnection: close\r\nX: \x80\t\r\n\r\n",
		"PUT / HTTP/1.1\r\nhost: a\r\ncontent-length: 01\r\ncontent-length: 1\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		r.Reset()
		if err := ParseRequest(b, &r, Limits{MaxHeadBytes: 1 << 20, MaxFields: 1000}); err != nil {
			return
		}
		target := r.Target.String(b)
		if !strings.HasPrefix(target, "/") {
			return // other forms are handed to net/http, not served by the fast path
		}
		if !ValidOriginForm(r.Target.Bytes(b)) {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b[:r.Len])))
		if err != nil {
			t.Fatalf("net/http rejects what h1 accepts: %v\n%q", err, b[:r.Len])
		}
		wantCL := r.ContentLength
		if wantCL < 0 {
			wantCL = 0
		}
		if r.Chunked {
			wantCL = -1
		}
		switch {
		case req.Method != r.Method.String(b):
			t.Fatalf("method %q vs %q", req.Method, r.Method.String(b))
		case req.RequestURI != target:
			t.Fatalf("target %q vs %q", req.RequestURI, target)
		case req.ProtoMinor != r.Minor:
			t.Fatalf("minor %d vs %d", req.ProtoMinor, r.Minor)
		case r.HasHost && req.Host != r.Host.String(b):
			t.Fatalf("host %q vs %q", req.Host, r.Host.String(b))
		case req.ContentLength != wantCL:
			t.Fatalf("length %d vs %d", req.ContentLength, wantCL)
		case r.Chunked != (len(req.TransferEncoding) == 1 && req.TransferEncoding[0] == "chunked"):
			t.Fatalf("chunked %v vs %v", r.Chunked, req.TransferEncoding)
		case req.Close != r.Close:
			t.Fatalf("close %v vs %v", req.Close, r.Close)
		}
	})
}

func FuzzChunkedReader(f *testing.F) {
	f.Add([]byte("3\r\nabc\r\n0\r\nX: y\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := NewChunkedReader(bufio.NewReader(bytes.NewReader(b)))
		_, _ = io.ReadAll(c)
	})
}

func FuzzParseResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Response
		r.Reset()
		_ = ParseResponse(b, &r, 1<<16)
	})
}
