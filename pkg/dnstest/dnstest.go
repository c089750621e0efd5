// Package dnstest runs a small authoritative DNS server on 127.0.0.1 for
// tests, whose answers (A, AAAA and SRV records, or a failure mode) the
// test changes while it runs, the way httptest runs an HTTP server.
//
// It must not be imported by non-test code: it is what makes
// github.com/miekg/dns a test-only dependency.
package dnstest

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Mode is how the server answers every query.
type Mode int

// Modes of answering.
const (
	// Answer with the records set (NXDOMAIN for an unknown name, an
	// empty NOERROR for a known name without records of the type).
	Answer Mode = iota
	// ServFail answers SERVFAIL (RFC 1035 §4.1.1 RCODE 2).
	ServFail
	// Drop answers nothing, so the client times out.
	Drop
)

// SRV is one SRV record (RFC 2782).
type SRV struct {
	Priority, Weight, Port uint16
	Target                 string
}

// Server is a running DNS server. Its methods are safe for concurrent use.
type Server struct {
	// Addr is the "127.0.0.1:port" the server listens on (UDP).
	Addr string

	mu      sync.Mutex
	mode    Mode
	addrs   map[string][]netip.Addr
	srvs    map[string][]SRV
	queries int
	srv     *dns.Server
}

// New starts a server on 127.0.0.1:0 UDP, stopped when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("dnstest: listen: %v", err)
	}
	s := &Server{Addr: pc.LocalAddr().String(), addrs: map[string][]netip.Addr{}, srvs: map[string][]SRV{}}
	started := make(chan struct{})
	s.srv = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve), NotifyStartedFunc: func() { close(started) }}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.srv.ActivateAndServe()
	}()
	<-started
	t.Cleanup(func() {
		_ = s.srv.Shutdown()
		<-done
	})
	return s
}

func fqdn(name string) string { return dns.Fqdn(strings.ToLower(name)) }

// SetAddrs makes name resolve to addrs (A and AAAA records); none removes
// the name.
func (s *Server) SetAddrs(name string, addrs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(addrs) == 0 {
		delete(s.addrs, fqdn(name))
		return
	}
	var as []netip.Addr
	for _, a := range addrs {
		as = append(as, netip.MustParseAddr(a))
	}
	s.addrs[fqdn(name)] = as
}

// SetSRV sets the SRV records of name; none removes the name.
func (s *Server) SetSRV(name string, recs ...SRV) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(recs) == 0 {
		delete(s.srvs, fqdn(name))
		return
	}
	s.srvs[fqdn(name)] = recs
}

// SetMode changes how every later query is answered.
func (s *Server) SetMode(m Mode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode = m
}

// Queries counts the queries received so far.
func (s *Server) Queries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries++
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	switch s.mode {
	case Drop:
		return
	case ServFail:
		m.Rcode = dns.RcodeServerFailure
		_ = w.WriteMsg(m)
		return
	}
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	addrs, okA := s.addrs[name]
	srvs, okS := s.srvs[name]
	if !okA && !okS {
		m.Rcode = dns.RcodeNameError
		_ = w.WriteMsg(m)
		return
	}
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Rrtype: q.Qtype, Ttl: 1}
	switch q.Qtype {
	case dns.TypeA, dns.TypeAAAA:
		for _, a := range addrs {
			switch {
			case q.Qtype == dns.TypeA && a.Is4():
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
			case q.Qtype == dns.TypeAAAA && a.Is6():
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
			}
		}
	case dns.TypeSRV:
		for _, r := range srvs {
			m.Answer = append(m.Answer, &dns.SRV{Hdr: hdr, Priority: r.Priority, Weight: r.Weight, Port: r.Port, Target: fqdn(r.Target)})
		}
	}
	_ = w.WriteMsg(m)
}
