package admin

import (
	"net/http"
	"strconv"

	"github.com/presence-service/presence/core"
)

// The operator pages, for the emails listed in admin.emails: every app,
// disable and enable, and what is live now.
//
// Disable is DeactivateApp: the key is forgotten, the app's channels end,
// grants are refused. Enable puts a disabled app back to verified, so that
// its owner activates it and gets a fresh key on their own page; the admin
// never sees an app's key. The schema has no "suspended by an admin" flag,
// so an owner can re-activate an app an admin disabled (see doc.go).

type adminData struct {
	Apps    []*core.App
	Stats   core.Stats
	ByState map[string]int
}

// requireAdmin returns the session of an admin, or answers (sign-in for
// a stranger on GET, 403 for a signed-in non-admin).
func (s *Server) requireAdmin(w http.ResponseWriter, r *http.Request) *session {
	var sess *session
	if r.Method == http.MethodPost {
		sess = s.checkCSRF(w, r)
	} else {
		sess = s.requireUser(w, r)
	}
	if sess == nil {
		return nil
	}
	if !s.isAdmin(sess) {
		s.fail(w, r, http.StatusForbidden, "This page is for the server's administrators.")
		return nil
	}
	return sess
}

func (s *Server) adminPage(w http.ResponseWriter, r *http.Request) {
	sess := s.requireAdmin(w, r)
	if sess == nil {
		return
	}
	apps, err := s.router.Apps(r.Context(), "")
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	d := adminData{Apps: apps, Stats: s.router.Stats(), ByState: make(map[string]int)}
	for _, a := range apps {
		d.ByState[string(a.State)]++
	}
	s.render(w, r, http.StatusOK, "admin", page{Title: "Admin", User: sess, Data: d})
}

func (s *Server) adminApp(w http.ResponseWriter, r *http.Request) (*core.App, bool) {
	if s.requireAdmin(w, r) == nil {
		return nil, false
	}
	id, ok := appIDOf(r, "id")
	if !ok {
		s.fail(w, r, http.StatusNotFound, "There is no such app.")
		return nil, false
	}
	app, err := s.router.App(r.Context(), id)
	if err != nil {
		s.failErr(w, r, err)
		return nil, false
	}
	return app, true
}

func (s *Server) adminDisable(w http.ResponseWriter, r *http.Request) {
	app, ok := s.adminApp(w, r)
	if !ok {
		return
	}
	if _, err := s.router.DeactivateApp(r.Context(), app.ID); err != nil {
		s.failErr(w, r, err)
		return
	}
	s.log.Info("admin: app disabled", "app", app.ID)
	s.setFlash(w, "ok", "Disabled app "+strconv.FormatInt(int64(app.ID), 10)+" ("+app.Name+").")
	seeOther(w, r, "/admin")
}

func (s *Server) adminEnable(w http.ResponseWriter, r *http.Request) {
	app, ok := s.adminApp(w, r)
	if !ok {
		return
	}
	if app.State != core.AppDisabled {
		s.setFlash(w, "error", "Only a disabled app can be enabled.")
		seeOther(w, r, "/admin")
		return
	}
	if _, err := s.router.EnableApp(r.Context(), app.ID); err != nil {
		s.failErr(w, r, err)
		return
	}
	s.log.Info("admin: app enabled", "app", app.ID)
	s.setFlash(w, "ok", "Enabled app "+strconv.FormatInt(int64(app.ID), 10)+" ("+app.Name+"): it is verified again; its owner activates it to get a new key.")
	seeOther(w, r, "/admin")
}
