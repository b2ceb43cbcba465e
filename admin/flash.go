package admin

import (
	"encoding/base64"
	"net/http"
	"strings"
)

// A flash is a one-time message shown on the page a POST redirects to
// ("App verified.", "The key did not match: …"). It travels in a short,
// signed cookie so that it needs no session (sign-out has one too) and
// cannot be forged into the page by another site.

const flashCookie = "presence_flash"

type flash struct {
	Kind    string // "ok" or "error": the CSS class
	Message string
}

func (s *Server) setFlash(w http.ResponseWriter, kind, msg string) {
	v := base64.RawURLEncoding.EncodeToString([]byte(kind + "\x00" + msg))
	http.SetCookie(w, &http.Cookie{
		Name: flashCookie, Value: v + "." + s.mac("flash", v), Path: "/", MaxAge: 120,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
}

// takeFlash reads the flash and deletes its cookie.
func (s *Server) takeFlash(w http.ResponseWriter, r *http.Request) *flash {
	c, err := r.Cookie(flashCookie)
	if err != nil {
		return nil
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
	v, sig, ok := strings.Cut(c.Value, ".")
	if !ok || !macEqual(sig, s.mac("flash", v)) {
		return nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return nil
	}
	kind, msg, ok := strings.Cut(string(raw), "\x00")
	if !ok || (kind != "ok" && kind != "error") {
		return nil
	}
	return &flash{Kind: kind, Message: msg}
}
