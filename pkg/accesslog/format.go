package accesslog

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
)

// Access log formats (log.access_format).
const (
	// FormatJSON is one JSON object per line (slog's JSON handler).
	FormatJSON = "json"
	// FormatLogfmt is key=value pairs (slog's text handler).
	FormatLogfmt = "logfmt"
	// FormatCombined is the Combined Log Format of Apache httpd
	// (mod_log_config's "combined") and nginx's default access log:
	// %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i".
	FormatCombined = "combined"
)

// Formats lists every format NewHandler knows.
func Formats() []string { return []string{FormatJSON, FormatLogfmt, FormatCombined} }

// ValidFormat reports whether f is a format NewHandler knows.
func ValidFormat(f string) bool { return slices.Contains(Formats(), f) }

// NewHandler returns a handler that writes access records to w in
// format (FormatJSON when empty or unknown; config validation refuses
// unknown ones). It writes every record of level Info and above: how
// much is logged is log.access and log.access_sample, not log.level.
func NewHandler(w io.Writer, format string) slog.Handler {
	switch format {
	case FormatCombined:
		return &combinedHandler{w: w}
	case FormatLogfmt:
		return slog.NewTextHandler(w, nil)
	default:
		return slog.NewJSONHandler(w, nil)
	}
}

// combinedHandler writes records made by New or ServerAnswer in the
// Combined Log Format; the other attributes are not part of it.
type combinedHandler struct {
	w  io.Writer
	mu sync.Mutex
}

func (h *combinedHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h *combinedHandler) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h *combinedHandler) WithGroup(string) slog.Handler                { return h }

func (h *combinedHandler) Handle(_ context.Context, r slog.Record) error {
	var client, method, uri, proto, referer, ua string
	var status, bytes int64
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case KeyClient:
			client = a.Value.String()
		case KeyMethod:
			method = a.Value.String()
		case KeyURI:
			uri = a.Value.String()
		case KeyProto:
			proto = a.Value.String()
		case KeyReferer:
			referer = a.Value.String()
		case KeyUserAgent:
			ua = a.Value.String()
		case KeyStatus:
			status = a.Value.Int64()
		case KeyBytes:
			bytes = a.Value.Int64()
		}
		return true
	})
	b := make([]byte, 0, 256)
	b = append(b, dash(client)...)
	b = append(b, " - - ["...)
	b = r.Time.AppendFormat(b, clfTime)
	b = append(b, "] \""...)
	if method == "" {
		b = append(b, '-') // the server answered before a request was parsed
	} else {
		b = appendEscaped(b, method+" "+uri+" "+proto)
	}
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, status, 10)
	b = append(b, ' ')
	if bytes == 0 {
		b = append(b, '-') // mod_log_config %b: "-" rather than 0
	} else {
		b = strconv.AppendInt(b, bytes, 10)
	}
	b = append(b, " \""...)
	b = appendEscaped(b, dash(referer))
	b = append(b, "\" \""...)
	b = appendEscaped(b, dash(ua))
	b = append(b, "\"\n"...)
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.w.Write(b)
	return err
}

// clfTime is %t of mod_log_config: [10/Oct/2000:13:55:36 -0700].
const clfTime = "02/Jan/2006:15:04:05 -0700"

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// appendEscaped appends s with '"', '\' and bytes outside printable
// ASCII written as \xHH, as nginx does, so that a client cannot end the
// quoted field or forge a log line.
func appendEscaped(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := range len(s) {
		c := s[i]
		if c == '"' || c == '\\' || c < 0x20 || c >= 0x7f {
			b = append(b, '\\', 'x', hex[c>>4], hex[c&0xf])
			continue
		}
		b = append(b, c)
	}
	return b
}
