package admin

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// ui holds the dashboard: one HTML template rendered on the server, so the
// page reads without JavaScript, plus a stylesheet and a script that only
// adds the live sparklines and refreshes the tables. Nothing is fetched
// from elsewhere: the page works offline and under a strict CSP.
//
//go:embed ui/index.html ui/dashboard.css ui/dashboard.js
var ui embed.FS

// Paths of the dashboard's files.
const (
	PathDashboard = "/"
	PathUIScript  = "/ui/dashboard.js"
	PathUIStyle   = "/ui/dashboard.css"
)

// dashboardCSP allows the page its own script, stylesheet and API calls
// and nothing else (CSP Level 3): no inline script, no other origin, no
// framing (clickjacking), no <base> or form targets.
const dashboardCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// dashboardView is what ui/index.html renders.
type dashboardView struct {
	Overview
	Now time.Time
}

func newDashboardTemplate() *template.Template {
	return template.Must(template.New("index.html").Funcs(template.FuncMap{
		"bytes": FormatBytes,
		"pct":   func(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) + "%" },
		"clock": func(t time.Time) string { return t.Format("15:04:05") },
		"stamp": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"ms":    func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) + " ms" },
	}).ParseFS(ui, "ui/index.html"))
}

// Age is how long ago t was, the short way ("42s ago"), or "never".
func (v dashboardView) Age(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return FormatAge(v.Now.Sub(t)) + " ago"
}

// Uptime is how long the process has run.
func (v dashboardView) Uptime() string {
	if v.Process.Started.IsZero() {
		return "unknown"
	}
	return FormatAge(v.Now.Sub(v.Process.Started))
}

// stateView is a target's state label and CSS class.
type stateView struct{ Label, Class string }

// TargetState is the label and CSS class of a target's state.
func (v dashboardView) TargetState(s upstream.Snapshot) stateView {
	l, c := TargetState(s, v.Now)
	return stateView{l, c}
}

// TargetState says how a target stands, for people: "healthy",
// "unhealthy (failing checks)", "ejected until 15:04:05"; class is "ok",
// "bad" or "warn".
func TargetState(s upstream.Snapshot, now time.Time) (label, class string) {
	switch {
	case s.Health.State == "unhealthy":
		return "unhealthy (failing checks)", "bad"
	case !s.DownUntil.IsZero() && s.DownUntil.After(now):
		return "ejected until " + s.DownUntil.Format("15:04:05"), "warn"
	case !s.Healthy:
		return s.Health.State, "bad"
	}
	return "healthy", "ok"
}

// CheckedBy says who probes the target: "this process", another worker
// (its host:pid from the shared lease), or "passive only" without active
// checks.
func (v dashboardView) CheckedBy(s upstream.Snapshot) string {
	return CheckedBy(s, v.Process.Holder)
}

// CheckedBy is dashboardView.CheckedBy for a holder ID.
func CheckedBy(s upstream.Snapshot, holder string) string {
	switch s.Health.CheckedBy {
	case "":
		return "passive only"
	case holder:
		return "this process"
	}
	return "worker " + s.Health.CheckedBy
}

func (h *handler) dashboard(w http.ResponseWriter, r *http.Request) {
	var buf bytes.Buffer
	if err := h.page.Execute(&buf, dashboardView{Overview: h.overview(), Now: h.o.Now()}); err != nil {
		h.o.Logger.Error("admin: render dashboard", "error", err)
		http.Error(w, "cannot render the dashboard", http.StatusInternalServerError)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Length", strconv.Itoa(buf.Len()))
	securityHeaders(hdr)
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes())
}

func securityHeaders(hdr http.Header) {
	hdr.Set("Content-Security-Policy", dashboardCSP)
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
}

// uiFile serves one embedded file. They change only with the binary, but
// an upgrade keeps the address: no-store keeps a stale script from
// meeting a newer API.
func uiFile(name, contentType string) http.HandlerFunc {
	b, err := ui.ReadFile(name)
	if err != nil {
		panic("admin: missing embedded " + name) // a build error, not a runtime one
	}
	return func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr.Set("Content-Type", contentType)
		hdr.Set("Content-Length", strconv.Itoa(len(b)))
		securityHeaders(hdr)
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			w.Write(b)
		}
	}
}

func (h *handler) serveOverview(w http.ResponseWriter, r *http.Request) {
	h.writeJSON(w, r, http.StatusOK, h.overview())
}

// serveStats answers PathStats; ?seconds=N limits the series to the last
// N seconds (default and maximum: 900).
func (h *handler) serveStats(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.URL.Query().Get("seconds"))
	h.writeJSON(w, r, http.StatusOK, h.stats(n))
}
