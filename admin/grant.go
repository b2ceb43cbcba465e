package admin

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/presence-service/presence/core"
)

// The grant flow of PROTOCOL §6. An app sends its user to
// GET /{app_id}/grant?redirect=<url>&id=<userstring>; the user allows or
// denies; the answer goes back to redirect with 303.

type grantData struct {
	App      *core.App
	Redirect string
	ID       string
	Action   string      // the form's target, /{app_id}
	Already  *core.Grant // the user allowed this app with this userstring before; nil if not
}

// grantPage serves GET /{app_id}/{page}; only page "grant" exists.
func (s *Server) grantPage(w http.ResponseWriter, r *http.Request) {
	id, ok := appIDOf(r, "app_id")
	if !ok || r.PathValue("page") != "grant" {
		s.fail(w, r, http.StatusNotFound, "There is no such page.")
		return
	}
	q := r.URL.Query()
	app, _, status, msg := s.checkGrantRequest(r, id, q.Get("redirect"), q.Get("id"))
	if status != 0 {
		s.fail(w, r, status, msg)
		return
	}
	sess := s.requireUser(w, r)
	if sess == nil {
		return
	}
	s.render(w, r, http.StatusOK, "grant", page{Title: "Allow " + app.Name + "?", User: sess, Data: grantData{
		App: app, Redirect: q.Get("redirect"), ID: q.Get("id"), Action: "/" + r.PathValue("app_id"),
		Already: s.existingGrant(r, sess, app.ID, q.Get("id")),
	}})
}

// existingGrant is the user's grant of app as userString, if there is
// one: the page then says that allowing again changes nothing. A failed
// lookup only loses that sentence.
func (s *Server) existingGrant(r *http.Request, sess *session, app core.AppID, userString string) *core.Grant {
	grants, err := s.router.UserGrants(r.Context(), sess.Who.Subject)
	if err != nil {
		s.log.Warn("admin: grants of the user", "err", err)
		return nil
	}
	for _, g := range grants {
		if g.AppID == app && g.UserString == userString {
			return g
		}
	}
	return nil
}

// grantSubmit serves POST /{app_id}: allow or deny.
func (s *Server) grantSubmit(w http.ResponseWriter, r *http.Request) {
	id, ok := appIDOf(r, "app_id")
	if !ok {
		s.fail(w, r, http.StatusNotFound, "There is no such page.")
		return
	}
	sess := s.checkCSRF(w, r)
	if sess == nil {
		return
	}
	userString := r.PostFormValue("id")
	app, redirect, status, msg := s.checkGrantRequest(r, id, r.PostFormValue("redirect"), userString)
	if status != 0 {
		s.fail(w, r, status, msg)
		return
	}
	switch r.PostFormValue("answer") {
	case "allow":
		g, err := s.router.Grant(r.Context(), sess.Who, app.ID, userString)
		if err != nil {
			s.failErr(w, r, err)
			return
		}
		w.Header().Set("Presence-UID", g.PUID)
		http.Redirect(w, r, withParam(redirect, "presence_uid", g.PUID), http.StatusSeeOther)
	case "deny":
		http.Redirect(w, r, withParam(redirect, "presence_error", "access_denied"), http.StatusSeeOther)
	default:
		s.fail(w, r, http.StatusBadRequest, `The answer must be "allow" or "deny".`)
	}
}

// checkGrantRequest checks the app and the request's redirect and
// userstring; a non-zero status says what to answer.
func (s *Server) checkGrantRequest(r *http.Request, id core.AppID, rawRedirect, userString string) (*core.App, *url.URL, int, string) {
	app, err := s.router.App(r.Context(), id)
	if errors.Is(err, core.ErrNotFound) {
		return nil, nil, http.StatusNotFound, "There is no app with this number."
	}
	if err != nil {
		s.log.Error("admin: load app", "app", id, "err", err)
		return nil, nil, http.StatusInternalServerError, "Something went wrong on our side. Please try again."
	}
	switch app.State {
	case core.AppUnverified:
		return nil, nil, http.StatusBadRequest, "This app has not proven its domain yet, so it cannot ask for your status."
	case core.AppDisabled:
		return nil, nil, http.StatusBadRequest, "This app is disabled and cannot ask for your status."
	}
	redirect, err := s.checkRedirect(app, rawRedirect)
	if err != nil {
		return nil, nil, http.StatusBadRequest, err.Error()
	}
	if err := core.CheckUserString(userString); err != nil {
		return nil, nil, http.StatusBadRequest, "The app asked for an invalid name to show you as (" + core.ReasonOf(err) + ")."
	}
	return app, redirect, 0, ""
}

// checkRedirect refuses anything but the app's own domain, so that the
// grant can never be an open redirect:
//   - https, or http when server.dev is on;
//   - no user info (https://app.example@evil.example confuses people);
//   - the host equal to the verified domain's host, or a subdomain of it
//     (not for an IP address domain: no subdomains there);
//   - when the verified domain names a port, that same port: the proof was
//     served on that port only, and on a shared host another port may be
//     someone else's. A domain without a port was proven on port 80, which
//     only the host's owner controls, so any port of it is accepted.
func (s *Server) checkRedirect(app *core.App, raw string) (*url.URL, error) {
	bad := func(why string) error {
		return errors.New("The app sent you here with a return address that is not its own (" + why + "). Nothing was granted.")
	}
	if raw == "" {
		return nil, bad("the return address is missing")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || strings.ContainsAny(raw, "\\\x00\r\n\t") {
		return nil, bad("not a valid URL")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && s.cfg.Server.Dev:
	case u.Scheme == "http" && loopbackHost(u.Hostname()):
		// Never leaves the machine (RFC 8252 §7.3 allows the same for
		// OAuth); the host must still be the app's own, below.
	case u.Scheme == "http":
		return nil, bad("it must use https")
	default:
		return nil, bad("it must be an https URL")
	}
	if u.User != nil {
		return nil, bad("user info is not allowed")
	}
	host := strings.ToLower(u.Hostname())
	domHost, domPort := app.Domain, ""
	if h, p, err := net.SplitHostPort(app.Domain); err == nil {
		domHost, domPort = h, p
	}
	domHost = strings.ToLower(domHost)
	isIP := net.ParseIP(domHost) != nil
	if host == "" || (host != domHost && (isIP || !strings.HasSuffix(host, "."+domHost))) {
		return nil, bad("it must be on " + domHost)
	}
	if domPort != "" && u.Port() != domPort {
		return nil, bad("it must use port " + domPort)
	}
	return u, nil
}

// withParam adds name=value to u's query. An existing presence_uid or
// presence_error is dropped first, so that the app reads only ours;
// otherwise the app's own query is kept byte for byte.
func withParam(u *url.URL, name, value string) string {
	v := *u
	q := v.Query()
	if q.Has("presence_uid") || q.Has("presence_error") {
		q.Del("presence_uid")
		q.Del("presence_error")
		v.RawQuery = q.Encode()
	}
	add := url.QueryEscape(name) + "=" + url.QueryEscape(value)
	if v.RawQuery == "" {
		v.RawQuery = add
	} else {
		v.RawQuery += "&" + add
	}
	return v.String()
}

// loopbackHost reports whether host is a loopback IP address or
// "localhost": an http return address there is as private as https.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
