package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// Through the whole server: a browser that loads an address nothing
// serves (one segment, which the app channel's route takes; an unknown
// app; a deep path) gets the site's 404 page, not Go's bare text.
func TestServerAnswersUnknownPagesWithThe404Page(t *testing.T) {
	n := startNode(t, writeConfig(t, ""))
	for _, path := range []string{"/nothing", "/9999", "/a/b/c", "/static/x.js"} {
		resp, err := http.Get(n.http(path))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
			!strings.Contains(string(body), `href="/static/style.css"`) || strings.Contains(string(body), "404 page not found") {
			t.Errorf("GET %s: %d %q\n%.200s\nwant the 404 page", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
}
