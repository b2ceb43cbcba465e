package identity

import (
	"context"
	"errors"
	"fmt"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/core"
)

// New builds the verifier that auth.verifier names, wrapped in a Guard with
// the default options, and the web sign-in flow when the verifier has one
// (oidc; nil otherwise: dev and browserid sign in through the admin pages'
// own forms). devSecret is used only by dev. Under oidc, New fetches the
// issuer's discovery document, so a wrong issuer fails here, at start.
func New(ctx context.Context, cfg presence.AuthConfig, devSecret []byte) (core.Verifier, core.CodeFlow, error) {
	switch cfg.Verifier {
	case "dev":
		if len(devSecret) == 0 {
			return nil, nil, errors.New("auth: dev verifier needs a secret")
		}
		return Guard(&core.DevVerifier{Secret: devSecret}, GuardOptions{}), nil, nil
	case "browserid":
		b, err := NewBrowserID(BrowserIDConfig{VerifierURL: cfg.VerifierURL, Audience: cfg.Audience})
		if err != nil {
			return nil, nil, fmt.Errorf("auth: %w", err)
		}
		return Guard(b, GuardOptions{}), nil, nil
	case "oidc":
		o, err := NewOIDC(ctx, OIDCConfig{
			Issuer:       cfg.OIDCIssuer,
			ClientID:     cfg.OIDCClientID,
			ClientSecret: cfg.OIDCClientSecret,
			Audience:     cfg.Audience,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("auth: %w", err)
		}
		return Guard(o, GuardOptions{}), o, nil
	}
	return nil, nil, fmt.Errorf("auth: unknown verifier %q", cfg.Verifier)
}
