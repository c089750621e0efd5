package rewrite

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
)

// ErrStatus is wrapped when a configured status does not fit its use.
var ErrStatus = errors.New("invalid status")

// RedirectStatuses are the statuses a redirect may answer with (RFC 9110
// §15.4). Zero means 308, which keeps the method and body (RFC 9110
// §15.4.9), unlike 301 and 302, which clients turn into a GET.
var RedirectStatuses = []int{301, 302, 303, 307, 308}

// Redirect answers a request with a redirect to a template over URLVars.
type Redirect struct {
	to     Template
	status int
}

// ParseRedirect parses a redirect to to with status (zero means 308).
func ParseRedirect(to string, status int) (Redirect, error) {
	if status == 0 {
		status = http.StatusPermanentRedirect
	}
	if !slices.Contains(RedirectStatuses, status) {
		return Redirect{}, fmt.Errorf("%w: %d is not a redirect (have: 301, 302, 303, 307, 308)", ErrStatus, status)
	}
	if to == "" {
		return Redirect{}, fmt.Errorf("%w: the target is empty", ErrTemplate)
	}
	t, err := ParseTemplate(to, URLVars)
	if err != nil {
		return Redirect{}, err
	}
	return Redirect{to: t, status: status}, nil
}

// Uses reports whether the target names variable name.
func (r Redirect) Uses(name string) bool { return r.to.Uses(name) }

// Target returns the Location and status for one request.
func (r Redirect) Target(vars Vars) (string, int) { return r.to.Expand(vars), r.status }

// Static is a fixed response: status, body and header fields.
type Static struct {
	Status int
	Body   []byte
	Header http.Header
}

// ParseStatic builds a fixed response; status zero means 200. Header
// names and values are checked as header templates without variables.
// Content-Length is set from the body, and Content-Type to text/plain
// when a body is given without one.
func ParseStatic(status int, body string, headers map[string]string) (Static, error) {
	if status == 0 {
		status = http.StatusOK
	}
	if status < 200 || status > 599 {
		return Static{}, fmt.Errorf("%w: %d is not a final status (200-599)", ErrStatus, status)
	}
	h, err := ParseHeaders(HeaderSpec{Set: headers})
	if err != nil {
		return Static{}, err
	}
	for _, op := range h.set {
		if len(op.val.parts) > 0 && op.val.parts[0].name != "" || len(op.val.parts) > 1 {
			return Static{}, &HeaderError{Key: op.name, Err: fmt.Errorf("%w: variables are not expanded here", ErrTemplate)}
		}
	}
	s := Static{Status: status, Body: []byte(body), Header: make(http.Header)}
	h.Apply(s.Header, nil)
	if body != "" && s.Header.Get("Content-Type") == "" {
		s.Header.Set("Content-Type", "text/plain; charset=utf-8")
	}
	if bodyAllowed(status) {
		s.Header.Set("Content-Length", strconv.Itoa(len(body)))
	} else if body != "" {
		return Static{}, fmt.Errorf("%w: a %d response has no body (RFC 9110 §6.4.1)", ErrStatus, status)
	}
	return s, nil
}

// bodyAllowed reports whether a response with status may have content.
func bodyAllowed(status int) bool {
	return status != http.StatusNoContent && status != http.StatusNotModified
}

// Serve writes s to w; HEAD gets the header only.
func (s Static) Serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	for k, v := range s.Header {
		h[k] = slices.Clone(v) // later layers may append
	}
	w.WriteHeader(s.Status)
	if r.Method != http.MethodHead && bodyAllowed(s.Status) {
		_, _ = w.Write(s.Body)
	}
}
