package identity

import (
	"context"
	"testing"
	"time"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/core"
)

func TestNew(t *testing.T) {
	ctx := context.Background()
	secret := []byte("0123456789abcdef0123456789abcdef")

	v, cf, err := New(ctx, presence.AuthConfig{Verifier: "dev"}, secret)
	if err != nil || cf != nil {
		t.Fatalf("dev: %v, code flow %v", err, cf)
	}
	tok := (&core.DevVerifier{Secret: secret}).Mint("Eve@Example.com", time.Hour)
	if id, err := v.Verify(ctx, tok); err != nil || id.Subject != "eve@example.com" {
		t.Fatalf("dev token: %+v %v", id, err)
	}
	if _, ok := v.(*Guarded); !ok {
		t.Fatalf("dev verifier %T is not guarded", v)
	}

	srv, _ := fakeBrowserID(t)
	v, cf, err = New(ctx, presence.AuthConfig{Verifier: "browserid", VerifierURL: srv.URL, Audience: rpAudience}, nil)
	if err != nil || cf != nil {
		t.Fatalf("browserid: %v, code flow %v", err, cf)
	}
	if id, err := v.Verify(ctx, "good"); err != nil || id.Subject != "alice@example.com" {
		t.Fatalf("browserid: %+v %v", id, err)
	}

	for name, cfg := range map[string]presence.AuthConfig{
		"dev without secret":         {Verifier: "dev"},
		"browserid without audience": {Verifier: "browserid", VerifierURL: srv.URL},
		"oidc without issuer":        {Verifier: "oidc", OIDCClientID: "x"},
		"unknown":                    {Verifier: "persona"},
	} {
		if _, _, err := New(ctx, cfg, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
