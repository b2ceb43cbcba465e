// Package identity holds the production identity verifiers of PROTOCOL.md
// §8 and the guard that keeps verification off the router's hot path.
//
//   - [OIDC] checks device assertions that are JWTs (OAuth access tokens or
//     ID tokens) against an OpenID Connect issuer's discovery document and
//     published keys, and runs the web sign-in (authorization-code flow with
//     PKCE, state and nonce). Firefox Accounts is one such issuer.
//   - [BrowserID] asks a remote verifier (the Persona / Firefox Accounts
//     verifier protocol) about each assertion.
//   - [Guard] wraps any core.Verifier with a bound on concurrent
//     verifications and a cache of recently verified assertions, so a slow
//     identity provider cannot stall every other connect and a reconnecting
//     device does not cost a round trip.
//
// [New] picks one by auth.verifier and wraps it in a Guard; it is what the
// command calls. Every error a verifier returns is a *core.Error with errno
// 34 (invalid assertion) or 35 (expired) and a reason a user can read; the
// detail for logs is in its Err.
//
// The identity stored for a user is Identity.Subject: the issuer's stable
// subject (the FxA uid) under oidc, the email under browserid and dev.
// Identity.Email is for display only and may change without losing grants.
package identity
