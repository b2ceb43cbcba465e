package core_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
)

func TestDevVerifier(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	v := &core.DevVerifier{Secret: []byte("s3cret"), Now: func() time.Time { return now }}
	other := &core.DevVerifier{Secret: []byte("another"), Now: v.Now}
	good := v.Mint("Ann@Example.com", time.Hour)
	id, err := v.Verify(context.Background(), good)
	if err != nil || id.Subject != "ann@example.com" || id.Email != "ann@example.com" || !id.Expires.Equal(now.Add(time.Hour)) {
		t.Fatalf("good token: %+v, %v", id, err)
	}
	cases := map[string]struct {
		token string
		errno core.Errno
	}{
		"expired":          {v.Mint("ann@example.com", -time.Second), core.ErrnoExpiredAssertion},
		"other secret":     {other.Mint("ann@example.com", time.Hour), core.ErrnoInvalidAssertion},
		"no dot":           {"abc", core.ErrnoInvalidAssertion},
		"tampered payload": {"x" + good, core.ErrnoInvalidAssertion},
		"empty":            {"", core.ErrnoInvalidAssertion},
	}
	for name, tc := range cases {
		if _, err := v.Verify(context.Background(), tc.token); core.ErrnoOf(err) != tc.errno {
			t.Errorf("%s: %v, want errno %d", name, err, tc.errno)
		}
	}
}

// Whatever a device sends as its assertion, the dev verifier answers
// errno 34 or 35, or an identity; it never panics.
func FuzzDevVerifier(f *testing.F) {
	v := &core.DevVerifier{Secret: []byte("s3cret")}
	f.Add(v.Mint("ann@example.com", time.Hour))
	f.Add("eyJlbWFpbCI6IiJ9.AAAA")
	f.Add("..")
	f.Fuzz(func(t *testing.T, token string) {
		id, err := v.Verify(context.Background(), token)
		switch {
		case err == nil:
			if id.Subject == "" || strings.ToLower(id.Subject) != id.Subject {
				t.Fatalf("%q: identity %+v", token, id)
			}
		case core.ErrnoOf(err) != core.ErrnoInvalidAssertion && core.ErrnoOf(err) != core.ErrnoExpiredAssertion:
			t.Fatalf("%q: %v", token, err)
		}
	})
}
