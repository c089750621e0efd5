package health

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pires/go-proxyproto"
)

// Probe types (upstreams.*.health.active.type).
const (
	// ProbeHTTP sends a GET for Path and checks the status (and body).
	// Targets with https:// are probed over TLS with the upstream's TLS
	// settings, h2c:// ones with HTTP/2 prior knowledge.
	ProbeHTTP = "http"
	// ProbeTCP only connects.
	ProbeTCP = "tcp"
	// ProbeTLS connects and completes a TLS handshake with the upstream's
	// TLS settings (certificate verification included).
	ProbeTLS = "tls"
)

// ProbeTypes lists the valid probe types.
func ProbeTypes() []string { return []string{ProbeHTTP, ProbeTCP, ProbeTLS} }

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Lo, Hi int }

// ParseStatusRanges parses expect_status entries: "200", "200-399". Empty
// means 200-399 (what HAProxy's and nginx's checks accept by default:
// success and redirection).
func ParseStatusRanges(list []string) ([]StatusRange, error) {
	if len(list) == 0 {
		return []StatusRange{{200, 399}}, nil
	}
	out := make([]StatusRange, 0, len(list))
	for _, s := range list {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
		a, err := parseStatus(lo)
		if err != nil {
			return nil, fmt.Errorf("status %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = parseStatus(hi); err != nil {
				return nil, fmt.Errorf("status %q: %w", s, err)
			}
		}
		if b < a {
			return nil, fmt.Errorf("status %q: range ends before it starts", s)
		}
		out = append(out, StatusRange{a, b})
	}
	return out, nil
}

// parseStatus parses a three-digit status code (RFC 9110 §15).
func parseStatus(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 100 || n > 599 {
		return 0, errors.New("not a status code from 100 to 599")
	}
	return n, nil
}

func statusOK(ranges []StatusRange, code int) bool {
	for _, r := range ranges {
		if code >= r.Lo && code <= r.Hi {
			return true
		}
	}
	return false
}

// ParsePercent parses "10%" (or a bare "10") into 0.10. Empty is zero.
func ParsePercent(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil || v < 0 || v > 100 {
		return 0, fmt.Errorf("%q is not a percentage from 0%% to 100%%", s)
	}
	return v / 100, nil
}

// ProbeSpec says how to check the targets of one upstream.
type ProbeSpec struct {
	// Type is ProbeHTTP, ProbeTCP or ProbeTLS. Empty means ProbeHTTP.
	Type string
	// Path of the HTTP check. Empty means "/".
	Path string
	// Host header of the HTTP check. Empty means the target's host:port.
	Host string
	// Expect are the statuses that pass. Nil means 200-399.
	Expect []StatusRange
	// BodyContains, when set, must occur in the first 64 KiB of the body.
	BodyContains string
	// Timeout bounds one whole check: connect, TLS, request and body.
	// Zero means 2s.
	Timeout time.Duration
	// TLS is the upstream's client TLS config for https:// targets and
	// ProbeTLS. Nil means the system roots and the target's host as name.
	TLS *tls.Config
	// SendProxy is the PROXY protocol version (1 or 2) the upstream's
	// targets expect at the start of every connection; the check sends
	// one too, with its own addresses (HAProxy's check-send-proxy). Zero
	// means none.
	SendProxy int
}

// maxProbeBody bounds what a check reads of a response body.
const maxProbeBody = 64 << 10

// prober runs one check of one target. It keeps no connection between
// checks: like HAProxy's checks, every probe opens a new connection, so a
// target that stopped accepting is seen at once.
type prober struct {
	spec   ProbeSpec
	dialer net.Dialer
}

func newProber(spec ProbeSpec) *prober {
	if spec.Type == "" {
		spec.Type = ProbeHTTP
	}
	if spec.Path == "" {
		spec.Path = "/"
	}
	if spec.Expect == nil {
		spec.Expect = []StatusRange{{200, 399}}
	}
	if spec.Timeout <= 0 {
		spec.Timeout = 2 * time.Second
	}
	return &prober{spec: spec}
}

// check probes target once and returns nil when it passes, else why not.
// scheme is the target's (http, https, h2c), hostport its address.
func (p *prober) check(ctx context.Context, scheme, hostport string) error {
	ctx, cancel := context.WithTimeout(ctx, p.spec.Timeout)
	defer cancel()
	conn, err := p.dialer.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	// The deadline makes every read and write below time out with ctx:
	// a target that accepts but never answers fails the check.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if v := p.spec.SendProxy; v == 1 || v == 2 {
		h := proxyproto.HeaderProxyFromAddrs(byte(v), conn.LocalAddr(), conn.RemoteAddr())
		if _, err := h.WriteTo(conn); err != nil {
			return fmt.Errorf("send PROXY header: %w", err)
		}
	}
	useTLS := scheme == "https" || p.spec.Type == ProbeTLS
	if useTLS {
		tc := tls.Client(conn, p.tlsConfig(hostport))
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("tls handshake: %w", err)
		}
		conn = tc
	}
	switch p.spec.Type {
	case ProbeTCP, ProbeTLS:
		return nil
	}
	if scheme == "h2c" {
		return p.checkH2C(ctx, hostport)
	}
	return p.checkHTTP1(conn, hostport)
}

func (p *prober) tlsConfig(hostport string) *tls.Config {
	var c *tls.Config
	if p.spec.TLS != nil {
		c = p.spec.TLS.Clone()
	} else {
		c = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if c.ServerName == "" {
		host, _, _ := net.SplitHostPort(hostport)
		c.ServerName = host
	}
	// The check speaks HTTP/1.1 on the TLS connection.
	c.NextProtos = []string{"http/1.1"}
	return c
}

func (p *prober) host(hostport string) string {
	if p.spec.Host != "" {
		return p.spec.Host
	}
	return hostport
}

// checkHTTP1 sends one GET with Connection: close (RFC 9112 §9.6) and
// judges the response.
func (p *prober) checkHTTP1(conn net.Conn, hostport string) error {
	req := &http.Request{
		Method:     http.MethodGet,
		URL:        &url.URL{Path: p.spec.Path},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"User-Agent": {"handoff-health-check"}, "Connection": {"close"}},
		Host:   p.host(hostport),
		Close:  true,
	}
	if u, err := url.ParseRequestURI(p.spec.Path); err == nil {
		req.URL = u
	}
	if err := req.Write(conn); err != nil {
		return fmt.Errorf("send check: %w", err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	defer res.Body.Close()
	return p.judge(res)
}

// checkH2C checks an h2c:// target with HTTP/2 prior knowledge (RFC 9113
// §3.3) on a transport of its own, closed after the check.
func (p *prober) checkH2C(ctx context.Context, hostport string) error {
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protos, DisableKeepAlives: true, DialContext: p.dialer.DialContext}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+hostport+p.spec.Path, nil)
	if err != nil {
		return fmt.Errorf("build check: %w", err)
	}
	req.Host = p.host(hostport)
	req.Header.Set("User-Agent", "handoff-health-check")
	res, err := tr.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("h2c check: %w", err)
	}
	defer res.Body.Close()
	return p.judge(res)
}

func (p *prober) judge(res *http.Response) error {
	if !statusOK(p.spec.Expect, res.StatusCode) {
		return fmt.Errorf("status %d", res.StatusCode)
	}
	if p.spec.BodyContains == "" {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, maxProbeBody))
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if !strings.Contains(string(b), p.spec.BodyContains) {
		return fmt.Errorf("body does not contain %q", p.spec.BodyContains)
	}
	return nil
}
