package cache

import (
	"bytes"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// serveEntry answers r from e: Age as RFC 9111 §4.2.3 computes it,
// Cache-Status (RFC 9211 §2) with detail, HEAD without body (§4: a HEAD
// may be answered from a stored GET), and for a stored 200 the client's
// conditionals (§4.3.2: 304 when they match) and Range (a 206 from the
// complete stored body) through http.ServeContent.
func (h *handler) serveEntry(w http.ResponseWriter, r *http.Request, e *Entry, st Stored, status string) {
	hdr := w.Header()
	for k, vs := range e.Header {
		// Clip: a wrapping handler that appends to a field must not write
		// into the stored entry's backing array.
		hdr[k] = slices.Clip(vs)
	}
	hdr.Set("Age", strconv.FormatInt(int64(st.Age/time.Second), 10))
	hdr.Add("Cache-Status", h.c.o.Name+"; "+status+"; ttl="+strconv.FormatInt(int64((st.Lifetime-st.Age)/time.Second), 10))
	if e.Status != http.StatusOK {
		w.WriteHeader(e.Status)
		if r.Method != http.MethodHead {
			_, _ = w.Write(e.Body)
		}
		return
	}
	if _, ok := hdr["Content-Type"]; !ok {
		hdr["Content-Type"] = nil // no sniffing: serve what the origin sent
	}
	var modtime time.Time
	if lm, err := http.ParseTime(e.Header.Get("Last-Modified")); err == nil {
		modtime = lm
	}
	http.ServeContent(w, r, "", modtime, bytes.NewReader(e.Body))
}
