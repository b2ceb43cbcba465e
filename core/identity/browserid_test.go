package identity

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
)

const rpAudience = "https://presence.test"

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// fakeBrowserID answers the verifier protocol according to the assertion.
// "slow" blocks until the client gives up; its handler reports on entered
// so tests know the request arrived.
func fakeBrowserID(t *testing.T) (srv *httptest.Server, entered chan struct{}) {
	t.Helper()
	entered = make(chan struct{}, 1)
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Assertion, Audience string }
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" ||
			json.NewDecoder(r.Body).Decode(&req) != nil || req.Audience != rpAudience {
			writeJSON(w, http.StatusBadRequest, map[string]string{"status": "failure", "reason": "need assertion and audience"})
			return
		}
		expires := time.Now().Add(time.Hour).UnixMilli()
		switch req.Assertion {
		case "good":
			writeJSON(w, http.StatusOK, map[string]any{"status": "okay", "email": "Alice@Example.com", "audience": rpAudience, "expires": expires, "issuer": "login.persona.org"})
		case "bad":
			writeJSON(w, http.StatusOK, map[string]any{"status": "failure", "reason": "no certificates provided"})
		case "expired":
			writeJSON(w, http.StatusOK, map[string]any{"status": "failure", "reason": "assertion has expired"})
		case "expired-okay":
			writeJSON(w, http.StatusOK, map[string]any{"status": "okay", "email": "a@example.com", "audience": rpAudience, "expires": time.Now().Add(-time.Minute).UnixMilli()})
		case "other-audience":
			writeJSON(w, http.StatusOK, map[string]any{"status": "okay", "email": "a@example.com", "audience": "https://elsewhere.test", "expires": expires})
		case "no-email":
			writeJSON(w, http.StatusOK, map[string]any{"status": "okay", "audience": rpAudience, "expires": expires})
		case "proxy-error":
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte("<html>502 Bad Gateway</html>"))
		case "huge":
			w.Write([]byte(`{"status":"okay","email":"a@example.com","pad":"`))
			w.Write([]byte(strings.Repeat("x", 2*maxVerifierReply)))
			w.Write([]byte(`"}`))
		case "slow":
			entered <- struct{}{}
			<-r.Context().Done() // until the client hangs up
		}
	}))
	t.Cleanup(srv.Close)
	return srv, entered
}

func TestBrowserID(t *testing.T) {
	srv, _ := fakeBrowserID(t)
	b, err := NewBrowserID(BrowserIDConfig{VerifierURL: srv.URL, Audience: rpAudience})
	if err != nil {
		t.Fatal(err)
	}
	id, err := b.Verify(context.Background(), "good")
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "alice@example.com" || id.Email != "alice@example.com" || id.Expires.IsZero() {
		t.Fatalf("identity = %+v", id)
	}
	for _, tt := range []struct {
		assertion string
		errno     core.Errno
		reason    string
	}{
		{"bad", core.ErrnoInvalidAssertion, "invalid assertion: no certificates provided"},
		{"expired", core.ErrnoExpiredAssertion, "assertion has expired"},
		{"expired-okay", core.ErrnoExpiredAssertion, "expired"},
		{"other-audience", core.ErrnoInvalidAssertion, "wrong audience"},
		{"no-email", core.ErrnoInvalidAssertion, "no email"},
		{"proxy-error", core.ErrnoInvalidAssertion, "identity verifier unavailable"},
		{"huge", core.ErrnoInvalidAssertion, "identity verifier unavailable"},
		{"", core.ErrnoInvalidAssertion, "empty"},
	} {
		t.Run(tt.assertion, func(t *testing.T) {
			_, err := b.Verify(context.Background(), tt.assertion)
			wantErr(t, err, tt.errno, tt.reason)
		})
	}
}

func TestBrowserIDDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	b, err := NewBrowserID(BrowserIDConfig{VerifierURL: "http://" + addr + "/verify", Audience: rpAudience})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Verify(context.Background(), "good")
	wantErr(t, err, core.ErrnoInvalidAssertion, "identity verifier unavailable")
}

// TestBrowserIDSlow: a verifier that never answers costs one timeout, not
// a hang.
func TestBrowserIDSlow(t *testing.T) {
	srv, entered := fakeBrowserID(t)
	const timeout = 200 * time.Millisecond
	b, err := NewBrowserID(BrowserIDConfig{VerifierURL: srv.URL, Audience: rpAudience, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := b.Verify(context.Background(), "slow")
		done <- err
	}()
	<-entered // the request reached the verifier, which now sits on it
	select {
	case err := <-done:
		wantErr(t, err, core.ErrnoInvalidAssertion, "identity verifier unavailable")
		if elapsed := time.Since(start); elapsed < timeout {
			t.Fatalf("returned after %v, before the timeout: not the slow path", elapsed)
		}
	case <-time.After(10 * time.Second): // a bound for a broken build, never a wait the test relies on
		t.Fatal("Verify hung on a slow verifier")
	}
}

func TestNewBrowserIDNeedsURLAndAudience(t *testing.T) {
	if _, err := NewBrowserID(BrowserIDConfig{Audience: rpAudience}); err == nil {
		t.Fatal("no URL accepted")
	}
	if _, err := NewBrowserID(BrowserIDConfig{VerifierURL: "http://x"}); err == nil {
		t.Fatal("no audience accepted")
	}
}
