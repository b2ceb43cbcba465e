package admin

import (
	"net/http"
	"strings"
)

// NotFoundPage wraps the server's whole handler: a page load (GET or HEAD,
// not a WebSocket upgrade) that h answers with a bare 404, the text/plain
// one of http.NotFound and of ServeMux for an unknown path, gets the
// site's 404 page instead. Answers of the machine endpoints are left
// alone: their 404s are JSON (POST /{app_id}/notification), and an
// upgrade is a WebSocket's.
func (s *Server) NotFoundPage(h http.Handler) http.Handler {
	page := s.secured(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusNotFound, "There is no page at this address.")
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method != http.MethodGet && r.Method != http.MethodHead) || r.Header.Get("Upgrade") != "" {
			h.ServeHTTP(w, r)
			return
		}
		nw := &notFoundWriter{ResponseWriter: w}
		h.ServeHTTP(nw, r)
		if nw.swallowed {
			hd := w.Header()
			hd.Del("Content-Type")
			hd.Del("X-Content-Type-Options")
			page.ServeHTTP(w, r)
		}
	})
}

// notFoundWriter passes everything through but a bare 404, which it
// swallows for NotFoundPage to answer.
type notFoundWriter struct {
	http.ResponseWriter
	wrote, swallowed bool
}

func (w *notFoundWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	if code == http.StatusNotFound && strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
		w.swallowed = true
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *notFoundWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.swallowed {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *notFoundWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
