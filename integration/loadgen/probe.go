package loadgen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// ProbeOptions configures Probe.
type ProbeOptions struct {
	// URL to GET. Required.
	URL string
	// Method of the request. Empty means GET.
	Method string
	// Timeout bounds the whole request. Zero means 10s.
	Timeout time.Duration
	// InsecureTLS reports whether https certificates go unverified.
	InsecureTLS bool
	// HTTP3 reports whether the request goes over HTTP/3 (QUIC on UDP,
	// RFC 9114) rather than TCP. False means TCP.
	HTTP3 bool
}

// ProbeResult describes one request on a new connection.
type ProbeResult struct {
	OK      bool    `json:"ok"`
	Outcome Outcome `json:"outcome"`
	Status  int     `json:"status"`
	// Backend is the BackendHeader of the response.
	Backend string `json:"backend"`
	// Body, trimmed, at most 4 KiB.
	Body string `json:"body"`
	// ConnectMs is connect(2) start to established; FirstByteMs is
	// connect start to the first response byte: for a socket-activated
	// service that is the cold start as a client sees it.
	ConnectMs   float64 `json:"connect_ms"`
	FirstByteMs float64 `json:"first_byte_ms"`
	Error       string  `json:"error,omitempty"`
	// Proto of the response ("HTTP/1.1", "HTTP/3.0").
	Proto string `json:"proto,omitempty"`
}

// Probe sends one request on a new connection and times it. Request failures
// are reported in the result; the error return is for bad options only.
func Probe(ctx context.Context, opts ProbeOptions) (ProbeResult, error) {
	if opts.URL == "" {
		return ProbeResult{}, errors.New("loadgen: no probe URL")
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var connStart, connDone, firstByte time.Time
	trace := &httptrace.ClientTrace{
		ConnectStart:         func(string, string) { connStart = time.Now() },
		ConnectDone:          func(string, string, error) { connDone = time.Now() },
		GotFirstResponseByte: func() { firstByte = time.Now() },
	}
	method := opts.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), method, opts.URL, nil)
	if err != nil {
		return ProbeResult{}, fmt.Errorf("loadgen: probe request: %w", err)
	}
	if method == http.MethodPost {
		// handoff's admin API takes state changes as JSON only.
		req.Header.Set("Content-Type", "application/json")
	}
	var rt http.RoundTripper
	if opts.HTTP3 {
		// QUIC has no connect(2): ConnectMs stays zero and FirstByteMs
		// runs from the request start.
		connStart = time.Now()
		h3 := &http3.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: opts.InsecureTLS}} //nolint:gosec // test certificates
		defer h3.Close()
		rt = h3
	} else {
		tr := newTransport(opts.InsecureTLS, true)
		defer tr.CloseIdleConnections()
		rt = tr
	}
	var res ProbeResult
	resp, err := rt.RoundTrip(req)
	if err == nil {
		defer resp.Body.Close()
		if firstByte.IsZero() {
			firstByte = time.Now()
		}
		res.Proto = resp.Proto
		res.Status = resp.StatusCode
		res.Backend = resp.Header.Get(BackendHeader)
		var b []byte
		b, err = io.ReadAll(io.LimitReader(resp.Body, 4096))
		res.Body = strings.TrimSpace(string(b))
	}
	ms := func(from, to time.Time) float64 {
		if from.IsZero() || to.IsZero() {
			return 0
		}
		return float64(to.Sub(from).Microseconds()) / 1000
	}
	res.ConnectMs = ms(connStart, connDone)
	res.FirstByteMs = ms(connStart, firstByte)
	res.Outcome = Classify(err)
	if err != nil {
		res.Error = err.Error()
		return res, nil
	}
	if res.Status < 200 || res.Status > 299 {
		res.Outcome = Status
		return res, nil
	}
	res.OK = true
	return res, nil
}
