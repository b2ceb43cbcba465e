package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/presence-service/presence/core"
)

// /device: the browser as a device (PROTOCOL §2). The page is static HTML
// plus /static/device.js, which keeps the device channel with
// /static/presence.js. It needs an assertion for connect:
// POST /device/assertion mints a short-lived one for the signed-in user,
// in dev mode only (docs/decisions.md, "The /device page's assertion").

// AssertionMinter mints device assertions (core.DevVerifier in dev mode).
type AssertionMinter interface {
	Mint(email string, ttl time.Duration) string
}

// deviceAssertionTTL bounds a minted assertion: the page asks again on
// errno 35, with its session and CSRF token, so a copied one is soon
// useless.
const deviceAssertionTTL = 10 * time.Minute

// deviceApp is one switch on the page: an app the user granted, with the
// names the user appears under (one app may have several grants).
type deviceApp struct {
	ID     core.AppID
	Name   string
	Domain string
	As     []string
	Active bool
}

type deviceData struct {
	Apps      []deviceApp
	CanMint   bool // POST /device/assertion works here
	Verifier  string
	Assertion string // the path the page posts to for an assertion
}

func (s *Server) devicePage(w http.ResponseWriter, r *http.Request) {
	sess := s.requireUser(w, r)
	if sess == nil {
		return
	}
	grants, err := s.router.UserGrants(r.Context(), sess.Who.Subject)
	if err != nil && !errors.Is(err, core.ErrNotFound) {
		s.failErr(w, r, err)
		return
	}
	var apps []deviceApp
	index := map[core.AppID]int{}
	for _, g := range grants {
		if i, ok := index[g.AppID]; ok {
			apps[i].As = append(apps[i].As, g.UserString)
			continue
		}
		app, err := s.router.App(r.Context(), g.AppID)
		if errors.Is(err, core.ErrNotFound) {
			continue // the app is gone; the server would ignore its id
		}
		if err != nil {
			s.failErr(w, r, err)
			return
		}
		index[g.AppID] = len(apps)
		apps = append(apps, deviceApp{ID: app.ID, Name: app.Name, Domain: app.Domain, As: []string{g.UserString}, Active: app.Active()})
	}
	d := deviceData{Apps: apps, CanMint: s.minter != nil, Verifier: s.cfg.Auth.Verifier, Assertion: "/device/assertion"}
	s.render(w, r, http.StatusOK, "device", page{Title: "This device", User: sess, Data: d})
}

// deviceAssertion answers {"assertion": "…", "expires_in": seconds} to the
// signed-in page (CSRF-checked: a cross-site page cannot mint one).
func (s *Server) deviceAssertion(w http.ResponseWriter, r *http.Request) {
	sess := s.checkCSRF(w, r)
	if sess == nil {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if s.minter == nil {
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(map[string]string{"error": "this server mints device assertions only with the dev identity; sign the device in with your identity provider"})
		return
	}
	tok := s.minter.Mint(sess.Who.Subject, deviceAssertionTTL)
	json.NewEncoder(w).Encode(map[string]any{"assertion": tok, "expires_in": int(deviceAssertionTTL.Seconds())})
}
