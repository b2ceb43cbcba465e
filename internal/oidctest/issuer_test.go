package oidctest_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/presence-service/presence/internal/oidctest"
)

// TestLogInKeepsSubjectAcrossEmailChange: the login form creates an
// account once; after ChangeEmail the new address signs in as the same
// subject, and the old one would be a new account.
func TestLogInKeepsSubjectAcrossEmailChange(t *testing.T) {
	f := oidctest.NewIssuer(t)
	authURL := f.URL + "/authorize?" + url.Values{
		"response_type": {"code"}, "client_id": {f.ClientID}, "scope": {"openid email"},
		"redirect_uri": {"https://rp.test/cb?x=1"}, "state": {"st"}, "nonce": {"n"},
		"code_challenge": {"c"}, "code_challenge_method": {"S256"},
	}.Encode()
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	back := f.LogIn(t, noRedirects, authURL, "ann@example.com")
	if !strings.HasPrefix(back.String(), "https://rp.test/cb?") || back.Query().Get("x") != "1" ||
		back.Query().Get("state") != "st" || back.Query().Get("code") == "" {
		t.Fatalf("sent back to %s", back)
	}
	sub := f.Subject("ann@example.com")
	if sub != oidctest.SubjectOf("ann@example.com") {
		t.Fatalf("subject %q", sub)
	}
	if got := f.ChangeEmail("ann@example.com", "ann@new.example"); got != sub {
		t.Fatalf("ChangeEmail gave subject %q, want %q", got, sub)
	}
	if got := f.Subject("ann@new.example"); got != sub {
		t.Fatalf("subject after the change %q, want %q", got, sub)
	}
	if code, state := f.SignIn(t, authURL, "ann@new.example"); code == "" || state != "st" {
		t.Fatalf("SignIn: code %q state %q", code, state)
	}
	if f.Subject("ann@example.com") == sub {
		t.Fatal("the old address still names the account")
	}
}
