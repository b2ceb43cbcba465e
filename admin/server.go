package admin

import (
	"bytes"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/core"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config is what New needs. Router and Config are required.
type Config struct {
	Router *core.Router
	Config *presence.Config
	// CodeFlow is the OpenID Connect web sign-in; nil unless auth.verifier
	// is oidc.
	CodeFlow core.CodeFlow
	// Verifier checks a pasted assertion at sign-in when auth.verifier is
	// browserid (there is no code flow there). Optional.
	Verifier core.Verifier
	Logger   *slog.Logger // nil: slog.Default()

	// VerifyTimeout bounds the fetch of http://<domain>/__presence
	// (0: 5 s, PROTOCOL §5; tests shorten it).
	VerifyTimeout time.Duration
	// Resolver looks up the domain to verify (nil: net.DefaultResolver).
	Resolver Resolver
	// SessionTTL is how long a sign-in lasts (0: 12 h).
	SessionTTL time.Duration
	// SessionKey signs CSRF tokens and the session cookies; nil: 32 random
	// bytes per process, so sessions end when the process restarts.
	// presence serve keeps it in the data folder (session_key).
	SessionKey []byte
	// SignedOutFile keeps the ids of signed-out sessions until they
	// expire, so that a restart does not bring a signed-out cookie back;
	// "": in memory only.
	SignedOutFile string
	// SignOuts shares sign-outs with the other servers that have the
	// same SessionKey (a cluster); nil on one server. A sign-out is
	// answered only once recorded there, and a session is refused (503)
	// while it cannot be asked.
	SignOuts SignOuts
	// DevAssertions mints the /device page's assertions; set only when
	// auth.verifier is dev (nil: the page cannot connect by itself).
	DevAssertions AssertionMinter
}

// Server serves the web pages. It is safe for concurrent use.
type Server struct {
	router   *core.Router
	cfg      *presence.Config
	codeFlow core.CodeFlow
	verifier core.Verifier
	minter   AssertionMinter // nil unless auth.verifier is dev
	log      *slog.Logger

	verifyTimeout time.Duration
	resolver      Resolver
	sessions      *sessionStore
	key           []byte // HMAC key for CSRF tokens, flash and sign-in cookies
	secure        bool   // cookies get Secure (TLS here or at a proxy in front)
	public        *url.URL
	pages         map[string]*template.Template
}

// New checks the configuration and parses the templates.
func New(c Config) (*Server, error) {
	if c.Router == nil || c.Config == nil {
		return nil, errors.New("admin: Router and Config are required")
	}
	s := &Server{
		router:        c.Router,
		cfg:           c.Config,
		codeFlow:      c.CodeFlow,
		verifier:      c.Verifier,
		minter:        c.DevAssertions,
		log:           c.Logger,
		verifyTimeout: c.VerifyTimeout,
		resolver:      c.Resolver,
		key:           c.SessionKey,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.verifyTimeout <= 0 {
		s.verifyTimeout = 5 * time.Second
	}
	if s.resolver == nil {
		s.resolver = net.DefaultResolver
	}
	if len(s.key) == 0 {
		s.key = make([]byte, 32)
		if _, err := rand.Read(s.key); err != nil {
			return nil, fmt.Errorf("admin: session key: %w", err)
		}
	}
	ttl := c.SessionTTL
	if ttl <= 0 {
		ttl = 12 * time.Hour
	}
	var err error
	if s.sessions, err = newSessionStore(ttl, c.Router.Now, s.key, c.SignedOutFile, c.SignOuts); err != nil {
		return nil, err
	}
	pub, err := url.Parse(c.Config.Server.PublicURL)
	if err != nil || pub.Host == "" {
		return nil, fmt.Errorf("admin: server.public_url %q: want an http(s) URL", c.Config.Server.PublicURL)
	}
	s.public = pub
	s.secure = c.Config.Server.TLSCert != "" || pub.Scheme == "https"
	if s.pages, err = parsePages(); err != nil {
		return nil, err
	}
	return s, nil
}

// Register adds the pages to mux. The WebSocket edge registers GET
// /{app_id} and POST /{app_id}/notification on the same mux; the grant
// page is registered as GET /{app_id}/{page} (see doc.go for why).
func (s *Server) Register(mux *http.ServeMux) {
	h := func(pattern string, f http.HandlerFunc) { mux.Handle(pattern, s.secured(f)) }
	h("GET /{$}", s.home)
	h("GET /login", s.loginPage)
	h("POST /login", s.loginSubmit)
	h("GET /login/callback", s.loginCallback)
	h("POST /logout", s.logout)
	h("GET /{app_id}/{page}", s.grantPage)
	h("POST /{app_id}", s.grantSubmit)
	h("GET /myapps", s.myApps)
	h("POST /myapps", s.registerApp)
	h("GET /myapps/{id}", s.appPage)
	h("POST /myapps/{id}/verify", s.verifyApp)
	h("POST /myapps/{id}/activate", s.activateApp)
	h("POST /myapps/{id}/rotate", s.rotateApp)
	h("POST /myapps/{id}/deactivate", s.deactivateApp)
	h("GET /me", s.mePage)
	h("POST /me/grants/{puid}/revoke", s.revokeGrant)
	h("GET /device", s.devicePage)
	h("POST /device/assertion", s.deviceAssertion)
	h("GET /admin", s.adminPage)
	h("POST /admin/apps/{id}/disable", s.adminDisable)
	h("POST /admin/apps/{id}/enable", s.adminEnable)
	static, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	// One pattern per file: GET /static/{path...} would conflict with
	// GET /{app_id}/{page} on paths like /static/grant.
	for _, name := range []string{"style.css", "copy.js", "favicon.svg", "presence.js", "device.js", "device.css"} {
		mux.Handle("GET /static/"+name, staticHeaders(files))
	}
}

// maxFormBytes bounds a form post (a description is at most 2000
// characters).
const maxFormBytes = 64 << 10

// secured sets the security headers every page carries. No form-action
// directive: Chrome applies it to the redirect that follows a form post,
// and the grant form must redirect to the app's domain.
func (s *Server) secured(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cache-Control", "no-store")
		if r.Method == http.MethodPost {
			// Forms here are small; a huge body is refused while parsing
			// (and then fails the CSRF check).
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		}
		h.ServeHTTP(w, r)
	})
}

func staticHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

// page is what every template gets.
type page struct {
	Title   string
	User    *session // nil when signed out
	CSRF    string   // the token for forms on this page
	Flash   *flash
	IsAdmin bool
	Data    any

	signedOut bool // render as signed out, without asking (the session cannot be checked)
}

// breakable escapes a domain or an email and lets it break after its
// dots and its @ (<wbr>), so that a narrow column wraps it between labels
// rather than in the middle of one.
func breakable(v string) template.HTML {
	var b strings.Builder
	for len(v) > 0 {
		i := strings.IndexAny(v, ".@")
		if i < 0 {
			b.WriteString(template.HTMLEscapeString(v))
			break
		}
		b.WriteString(template.HTMLEscapeString(v[:i+1]))
		b.WriteString("<wbr>")
		v = v[i+1:]
	}
	return template.HTML(b.String()) // #nosec G203: every piece is escaped above
}

func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"breakable": breakable,
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
	}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("admin: templates: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := make(map[string]*template.Template)
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("admin: template %s: %w", n, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// render writes a whole page, or a 500 when the template fails (into a
// buffer first, so that a half page is never sent).
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	t := s.pages[name]
	if t == nil {
		s.log.Error("admin: no such template", "name", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if p.User == nil && !p.signedOut {
		p.User = s.sessionOf(r)
	}
	if p.User != nil {
		if p.CSRF == "" {
			p.CSRF = s.csrfToken(p.User)
		}
		p.IsAdmin = s.isAdmin(p.User)
	}
	if p.Flash == nil {
		p.Flash = s.takeFlash(w, r)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", p); err != nil {
		s.log.Error("admin: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// fail renders the error page: 400, 403, 404, 409, 500.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.render(w, r, status, "error", page{Title: http.StatusText(status), Data: msg})
}

// failErr maps a domain error once: not found → 404, conflict → 409 with
// its reason, *core.Error → 400 with its reason, anything else → 500
// (detail in the log, not on the page).
func (s *Server) failErr(w http.ResponseWriter, r *http.Request, err error) {
	var ce *core.Error
	switch {
	case errors.Is(err, core.ErrNotFound):
		s.fail(w, r, http.StatusNotFound, "Not found.")
	case errors.Is(err, core.ErrConflict):
		s.fail(w, r, http.StatusConflict, conflictReason(err))
	case errors.As(err, &ce) && ce.Errno != core.ErrnoInternal:
		s.fail(w, r, http.StatusBadRequest, core.ReasonOf(err))
	default:
		s.log.Error("admin: request failed", "path", r.URL.Path, "err", err)
		s.fail(w, r, http.StatusInternalServerError, "Something went wrong on our side. Please try again.")
	}
}

// conflictReason is the text after "conflict: " of a wrapped ErrConflict.
func conflictReason(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, core.ErrConflict.Error()+": "); i >= 0 {
		msg = msg[i+len(core.ErrConflict.Error())+2:]
	}
	if msg == "" {
		return "That cannot be done in the app's present state."
	}
	return strings.ToUpper(msg[:1]) + msg[1:] + "."
}

// appIDOf reads a numeric path value; ok is false for anything else (a
// 404, never a 400: the path names nothing).
func appIDOf(r *http.Request, name string) (core.AppID, bool) {
	v := r.PathValue(name)
	if v == "" || len(v) > 18 || v[0] == '0' {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return core.AppID(n), true
}

// home is a small front page.
func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "home", page{Title: "Presence"})
}

// seeOther answers a POST with 303 to a local path.
func seeOther(w http.ResponseWriter, r *http.Request, path string) {
	http.Redirect(w, r, path, http.StatusSeeOther)
}
