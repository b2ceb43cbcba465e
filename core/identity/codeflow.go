package identity

import (
	"context"
	"crypto/subtle"
	"errors"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/presence-service/presence/core"
)

// The web sign-in: the OpenID Connect authorization-code flow with PKCE
// (S256), state and nonce. The admin pages own the per-browser secrets:
// they make state, nonce and the PKCE verifier (oauth2.GenerateVerifier),
// keep them in a short-lived cookie, send the challenge
// (oauth2.S256ChallengeFromVerifier) through AuthCodeURL, check state on
// return and hand code, verifier and nonce to Exchange.

func (o *OIDC) oauth2Config(redirectURL string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     o.cfg.ClientID,
		ClientSecret: o.cfg.ClientSecret,
		Endpoint:     o.endpoint,
		RedirectURL:  redirectURL,
		Scopes:       o.cfg.Scopes,
	}
}

// AuthCodeURL is where the browser goes to sign in. codeChallenge is the
// S256 challenge of the verifier later given to Exchange.
func (o *OIDC) AuthCodeURL(state, nonce, codeChallenge, redirectURL string) string {
	return o.oauth2Config(redirectURL).AuthCodeURL(state,
		oidc.Nonce(nonce),
		oauth2.SetAuthURLParam("code_challenge", codeChallenge),
		oauth2.SetAuthURLParam("code_challenge_method", "S256"),
	)
}

// Exchange redeems the code the issuer sent back to redirectURL, proves
// the PKCE verifier, and checks the ID token: signature, issuer, audience
// (the client id), expiry, nonce and, when present, at_hash. The email comes
// from the ID token or, when the issuer keeps it elsewhere (Firefox Accounts
// keeps it in its profile server), from the userinfo endpoint.
func (o *OIDC) Exchange(ctx context.Context, code, codeVerifier, nonce, redirectURL string) (core.Identity, error) {
	if code == "" || codeVerifier == "" || nonce == "" {
		return core.Identity{}, core.Errorf(core.ErrnoInvalidAssertion, "sign-in: missing code, verifier or nonce")
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, o.client), o.cfg.Timeout)
	defer cancel()
	tok, err := o.oauth2Config(redirectURL).Exchange(ctx, code, oauth2.VerifierOption(codeVerifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode != "" {
			return core.Identity{}, &core.Error{Errno: core.ErrnoInvalidAssertion,
				Reason: "sign-in refused by the identity provider: " + re.ErrorCode, Err: err}
		}
		return core.Identity{}, &core.Error{Errno: core.ErrnoInvalidAssertion, Reason: "identity provider unavailable", Err: err}
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return core.Identity{}, core.Errorf(core.ErrnoInvalidAssertion, "sign-in: the identity provider sent no ID token")
	}
	idt, c, err := o.verify(ctx, raw, []string{o.cfg.ClientID})
	if err != nil {
		return core.Identity{}, err
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return core.Identity{}, core.Errorf(core.ErrnoInvalidAssertion, "sign-in: nonce mismatch")
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return core.Identity{}, &core.Error{Errno: core.ErrnoInvalidAssertion, Reason: "sign-in: access token does not match the ID token", Err: err}
		}
	}
	id := core.Identity{Subject: idt.Subject, Email: c.displayEmail(), Expires: idt.Expiry}
	if id.Email == "" && o.userInfo != "" {
		id.Email = o.userInfoEmail(ctx, tok, idt.Subject)
	}
	return id, nil
}

// userInfoEmail asks the userinfo endpoint for the email. A failure there
// does not fail the sign-in: the subject is already proven and the email is
// only for display.
func (o *OIDC) userInfoEmail(ctx context.Context, tok *oauth2.Token, subject string) string {
	ui, err := o.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil || (ui.Subject != "" && ui.Subject != subject) {
		return ""
	}
	var c tokenClaims
	if err := ui.Claims(&c); err != nil {
		return ""
	}
	return strings.ToLower(c.displayEmail())
}
