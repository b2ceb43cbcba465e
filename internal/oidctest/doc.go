// Package oidctest is an in-process OpenID Connect issuer for tests:
// discovery, a JWKS with key rotation, an authorization endpoint with a
// login page, a token endpoint that checks the client and PKCE, and
// userinfo. Tests point a verifier, or a whole Presence server, at its URL
// and sign people in through its login form as a browser would; they mint
// device tokens with any claims they like.
//
// Accounts work like those of a real provider such as Firefox Accounts:
// the first sign-in with an email creates an account whose subject never
// changes, and ChangeEmail gives the account a new address under the same
// subject.
package oidctest
