// Package admin serves the web pages of Presence: sign-in, the grant page
// an app sends its users to (PROTOCOL.md §6), the developer portal under
// /myapps (§5), the user's grants under /me, /device (the browser as a
// device, §2), and the operator pages under /admin. Pages are
// server-rendered from embedded html/template files; the scripts are static
// files (copy.js for copy buttons; presence.js, the device library, and
// device.js, which drives /device with it), so the Content-Security-Policy
// allows no inline script or style.
//
// Wiring (cmd/presence):
//
//	a, err := admin.New(admin.Config{Router: r, Config: cfg, CodeFlow: flow, Logger: log})
//	a.Register(mux) // the same mux as the WebSocket edge
//
// # Decisions
//
// Routes. The edge owns GET /{app_id} and POST /{app_id}/notification on the
// same mux. The grant page is registered as GET /{app_id}/{page} (only
// page "grant" answers; anything else is 404), not GET /{app_id}/grant:
// ServeMux panics on that pattern beside GET /myapps/{id}, since each
// matches a path the other does not (/myapps/grant). Static files are
// registered one pattern per file for the same reason. An app_id that is
// not a positive decimal number without leading zeros is 404.
//
// Sessions. A signed cookie (presence_session, HttpOnly, SameSite=Lax,
// Secure when server.tls_cert is set or server.public_url is https): a
// random 256-bit id, who signed in and when it ends, under an HMAC with
// Config.SessionKey, which presence serve keeps in the data folder
// (session_key): a restart signs nobody out. A session lasts 12 h from
// sign-in; every sign-in gets a new id. Sign-out really ends the session,
// a copied cookie with it: the id is refused until its expiry, and
// recorded in Config.SignedOutFile (signed_out in the data folder) so
// that a restart does not bring it back. Servers that share the session
// key (a cluster) share sign-outs through Config.SignOuts: recorded there
// before the sign-out is answered, asked at each request; while it cannot
// be asked, sessions are refused (503), and a sign-out it cannot record is
// answered 503 with the session left as it was.
//
// CSRF. Every form carries csrf_token; every POST checks it before
// anything else (403 when missing or wrong). Signed in, the token is
// HMAC(key, session id): tied to the session, no storage. The sign-in form
// uses a signed double-submit cookie (presence_login_csrf).
//
// Sign-in. auth.verifier dev: a form that takes an email (anyone is anyone:
// dev mode only). oidc: GET /login redirects to the issuer with state,
// nonce and a PKCE S256 challenge; the three secrets and next wait in a
// signed, HttpOnly, 10-minute cookie scoped to /login; GET
// /login/callback checks state in constant time, hands code, verifier and
// nonce to CodeFlow.Exchange, and signs in. browserid: a form that takes an
// assertion, checked by Config.Verifier. next is kept only when it is a
// local path: "//host", "/\host", absolute URLs, control characters and
// backslashes all become "/".
//
// Grants. The grant page checks everything before showing Allow: an
// unknown app is 404; an unverified or disabled app is 400; a bad redirect
// is 400 (never a redirect). The redirect must be https (http too when
// server.dev), without user info, on the app's verified host or a
// subdomain of it (no subdomains for an IP address domain). Ports: when
// the verified domain names a port (host:port), the redirect must use that
// port, because the proof was served on that port only and on a shared host
// another port may be someone else's; a domain without a port was proven on
// port 80, which only the host's owner controls, so any port of the host
// is accepted. Allow answers 303 to the redirect with presence_uid appended
// to its query (the app's own query is kept byte for byte; a
// presence_uid or presence_error already there is dropped first) and the
// header Presence-UID; deny appends presence_error=access_denied. Not
// signed in: 303 to /login?next=<the grant URL>.
//
// Developer pages. An app belongs to the email that registered it
// (lower-cased; the identity's subject when there is no email). Anyone
// else gets 404 on its page and every action, like an app that does not
// exist. Activate and Rotate answer with the page itself (200, no-store)
// showing the 1024-character key once; it never travels in a URL, a
// cookie or a flash. Other actions redirect (303) with a flash message.
//
// Verification (verify.go). GET http://<domain>/__presence, 5 s in all
// (Config.VerifyTimeout), at most 8 KiB, compared trimmed. The name is
// resolved once; when registration.allow_private_domains is off, any
// private, loopback, link-local or otherwise reserved address among the
// answers refuses the domain; the dialer is pinned to the checked address
// and a Control hook re-checks what is dialled; no proxy from the
// environment. Redirects: at most 3, same host name only, same port when
// the domain names one (else the scheme's default port, so http → https on
// the same name works).
//
// Admin. admin.emails (case-insensitive) see every app and live counts
// (Router.Stats). Disable is DeactivateApp. Enable puts a disabled app back
// to verified, so its owner activates it and gets a new key (an admin
// never sees a key). There is no "suspended by an admin" flag in the
// schema, so the owner of an app an admin disabled can activate it again.
//
// Headers. Every page: CSP default-src 'self' (no inline script or style,
// frame-ancestors 'none'; no form-action, which Chrome would apply to the
// grant form's redirect to the app), X-Frame-Options DENY,
// X-Content-Type-Options nosniff, Referrer-Policy same-origin,
// Cache-Control no-store. Form posts are capped at 64 KiB.
//
// # Tests
//
//	go test -race ./admin/...
//	sh admin/browsertest/install.sh    # Debian chromium + playwright-core (npm ci)
//	PRESENCE_BROWSER=1 go test -race -run TestBrowser ./admin/
//
// The browser test drives /usr/bin/chromium (PRESENCE_CHROMIUM overrides)
// headless with a fresh profile per person, and saves screenshots to
// admin/browsertest/out (PRESENCE_SCREENSHOTS overrides). With
// PRESENCE_BROWSER=1 a missing chromium or node_modules fails it.
package admin
