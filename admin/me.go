package admin

import (
	"errors"
	"net/http"
	"time"

	"github.com/presence-service/presence/core"
)

// /me: the signed-in user's grants, and revoking them (PROTOCOL §6).
// Grants belong to the identity's subject, the stable id (not the email,
// which the provider may change).

type grantRow struct {
	PUID       string
	AppName    string
	Domain     string
	UserString string
	Since      time.Time
	Connected  bool // an app channel is attached now
}

func (s *Server) mePage(w http.ResponseWriter, r *http.Request) {
	sess := s.requireUser(w, r)
	if sess == nil {
		return
	}
	grants, err := s.router.UserGrants(r.Context(), sess.Who.Subject)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	rows := make([]grantRow, 0, len(grants))
	for _, g := range grants {
		row := grantRow{PUID: g.PUID, UserString: g.UserString, Since: g.CreatedAt, AppName: "(app gone)"}
		if app, err := s.router.App(r.Context(), g.AppID); err == nil {
			row.AppName, row.Domain = app.Name, app.Domain
			row.Connected = s.router.AppConnected(g.AppID)
		} else if !errors.Is(err, core.ErrNotFound) {
			s.failErr(w, r, err)
			return
		}
		rows = append(rows, row)
	}
	s.render(w, r, http.StatusOK, "me", page{Title: "My grants", User: sess, Data: rows})
}

func (s *Server) revokeGrant(w http.ResponseWriter, r *http.Request) {
	sess := s.checkCSRF(w, r)
	if sess == nil {
		return
	}
	puid := r.PathValue("puid")
	g, err := s.router.GrantByPUID(r.Context(), puid)
	if err == nil && g.UserID != sess.Who.Subject {
		err = core.ErrNotFound // someone else's grant does not exist for this user
	}
	if err == nil {
		err = s.router.Revoke(r.Context(), sess.Who.Subject, puid)
	}
	if errors.Is(err, core.ErrNotFound) {
		s.fail(w, r, http.StatusNotFound, "There is no such grant (maybe it was already revoked).")
		return
	}
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	name := "The app"
	if app, err := s.router.App(r.Context(), g.AppID); err == nil {
		name = app.Name
	}
	s.setFlash(w, "ok", "Revoked: "+name+" no longer sees you as "+g.UserString+".")
	seeOther(w, r, "/me")
}
