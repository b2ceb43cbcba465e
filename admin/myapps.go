package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/presence-service/presence/core"
)

// The developer pages of PROTOCOL §5. An app belongs to the email that
// registered it; anyone else gets 404 on its page and every action, the
// same answer as for an app that does not exist, so ids cannot be probed.

type myAppsData struct {
	Apps                      []*core.App
	Domain, Name, Description string // the register form, kept on error
	Error                     string
}

func (s *Server) myApps(w http.ResponseWriter, r *http.Request) {
	sess := s.requireUser(w, r)
	if sess == nil {
		return
	}
	s.renderMyApps(w, r, sess, http.StatusOK, myAppsData{})
}

func (s *Server) renderMyApps(w http.ResponseWriter, r *http.Request, sess *session, status int, d myAppsData) {
	apps, err := s.router.Apps(r.Context(), sess.Owner)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	d.Apps = apps
	s.render(w, r, status, "myapps", page{Title: "My apps", User: sess, Data: d})
}

func (s *Server) registerApp(w http.ResponseWriter, r *http.Request) {
	sess := s.checkCSRF(w, r)
	if sess == nil {
		return
	}
	d := myAppsData{Domain: r.PostFormValue("domain"), Name: r.PostFormValue("name"), Description: r.PostFormValue("description")}
	app, err := s.router.RegisterApp(r.Context(), sess.Owner, d.Domain, d.Name, d.Description)
	var ce *core.Error
	if errors.As(err, &ce) && ce.Errno == core.ErrnoInvalidField {
		d.Error = core.ReasonOf(err)
		s.renderMyApps(w, r, sess, http.StatusBadRequest, d)
		return
	}
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	s.setFlash(w, "ok", fmt.Sprintf("Registered %s as app %d. Next: prove that you own %s.", app.Name, app.ID, app.Domain))
	seeOther(w, r, appPath(app.ID))
}

func appPath(id core.AppID) string { return "/myapps/" + strconv.FormatInt(int64(id), 10) }

// ownApp loads the app named by the path for its owner; anyone else, and
// any id that is not a number, gets 404.
func (s *Server) ownApp(w http.ResponseWriter, r *http.Request, sess *session) *core.App {
	id, ok := appIDOf(r, "id")
	if !ok {
		s.fail(w, r, http.StatusNotFound, "There is no such app.")
		return nil
	}
	app, err := s.router.App(r.Context(), id)
	if errors.Is(err, core.ErrNotFound) || (err == nil && !strings.EqualFold(app.OwnerEmail, sess.Owner)) {
		s.fail(w, r, http.StatusNotFound, "There is no such app.")
		return nil
	}
	if err != nil {
		s.failErr(w, r, err)
		return nil
	}
	return app
}

// appData is the app page. Key is set only on the answer to Activate or
// Rotate: the one time the API key is shown.
type appData struct {
	App          *core.App
	Key          string
	ProofURL     string
	WSURL        string
	NotifyURL    string
	GrantURL     string
	ComponentJID string
	XMPPPort     string // empty when the XMPP listener is off
	XMPPHost     string
	XMPPDomain   string
	PublicURL    string
}

func (s *Server) appPage(w http.ResponseWriter, r *http.Request) {
	sess := s.requireUser(w, r)
	if sess == nil {
		return
	}
	app := s.ownApp(w, r, sess)
	if app == nil {
		return
	}
	s.renderApp(w, r, sess, app, "", nil)
}

func (s *Server) renderApp(w http.ResponseWriter, r *http.Request, sess *session, app *core.App, key string, fl *flash) {
	id := strconv.FormatInt(int64(app.ID), 10)
	base := strings.TrimSuffix(s.public.String(), "/")
	ws := *s.public
	ws.Scheme = "ws"
	if s.public.Scheme == "https" {
		ws.Scheme = "wss"
	}
	ws.Path = strings.TrimSuffix(ws.Path, "/") + "/" + id
	ws.RawQuery, ws.Fragment = "", ""
	d := appData{
		App:          app,
		Key:          key,
		ProofURL:     "http://" + app.Domain + "/__presence",
		WSURL:        ws.String(),
		NotifyURL:    base + "/" + id + "/notification",
		GrantURL:     base + "/" + id + "/grant?redirect=" + url.QueryEscape("https://"+app.Domain+"/presence/return") + "&id=" + url.QueryEscape("alice"),
		ComponentJID: id + "." + s.cfg.XMPP.Domain,
		XMPPDomain:   s.cfg.XMPP.Domain,
		PublicURL:    base,
	}
	if l := s.cfg.XMPP.Listen; l != "" {
		if h, p, err := net.SplitHostPort(l); err == nil {
			d.XMPPHost, d.XMPPPort = h, p
			if h == "" || h == "0.0.0.0" || h == "::" {
				d.XMPPHost = s.public.Hostname()
			}
		}
	}
	s.render(w, r, http.StatusOK, "app", page{Title: app.Name, User: sess, Flash: fl, Data: d})
}

func (s *Server) verifyApp(w http.ResponseWriter, r *http.Request) {
	sess := s.checkCSRF(w, r)
	if sess == nil {
		return
	}
	app := s.ownApp(w, r, sess)
	if app == nil {
		return
	}
	if app.State != core.AppUnverified {
		s.setFlash(w, "ok", "The domain is already verified.")
		seeOther(w, r, appPath(app.ID))
		return
	}
	if err := s.verifyDomain(r.Context(), app.Domain, app.VerificationKey); err != nil {
		s.log.Info("admin: domain verification failed", "app", app.ID, "domain", app.Domain, "err", err)
		s.setFlash(w, "error", "Verification failed: "+err.Error())
		seeOther(w, r, appPath(app.ID))
		return
	}
	if _, err := s.router.MarkVerified(r.Context(), app.ID); err != nil {
		s.failErr(w, r, err)
		return
	}
	s.setFlash(w, "ok", "Verified: you own "+app.Domain+". You can now activate the app.")
	seeOther(w, r, appPath(app.ID))
}

// activateApp and rotateApp answer with the page itself (200, no-store),
// not a redirect: the key is shown this once and never travels in a URL
// or a cookie.
func (s *Server) activateApp(w http.ResponseWriter, r *http.Request) {
	s.keyAction(w, r, s.router.ActivateApp, "Activated. Copy the API key now: it is shown only once.")
}

func (s *Server) rotateApp(w http.ResponseWriter, r *http.Request) {
	s.keyAction(w, r, s.router.RotateKey, "New key made; the old one no longer works and its open channels were closed. Copy the new key now: it is shown only once.")
}

func (s *Server) keyAction(w http.ResponseWriter, r *http.Request, act func(context.Context, core.AppID) (*core.App, string, error), done string) {
	sess := s.checkCSRF(w, r)
	if sess == nil {
		return
	}
	app := s.ownApp(w, r, sess)
	if app == nil {
		return
	}
	updated, key, err := act(r.Context(), app.ID)
	if errors.Is(err, core.ErrConflict) {
		s.setFlash(w, "error", conflictReason(err))
		seeOther(w, r, appPath(app.ID))
		return
	}
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	s.renderApp(w, r, sess, updated, key, &flash{Kind: "ok", Message: done})
}

func (s *Server) deactivateApp(w http.ResponseWriter, r *http.Request) {
	sess := s.checkCSRF(w, r)
	if sess == nil {
		return
	}
	app := s.ownApp(w, r, sess)
	if app == nil {
		return
	}
	if _, err := s.router.DeactivateApp(r.Context(), app.ID); errors.Is(err, core.ErrConflict) {
		s.setFlash(w, "error", conflictReason(err))
	} else if err != nil {
		s.failErr(w, r, err)
		return
	} else {
		s.setFlash(w, "ok", "Deactivated: the key no longer works and the app's channels were closed. Activate again to get a new key.")
	}
	seeOther(w, r, appPath(app.ID))
}
