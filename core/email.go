package core

import (
	"net/mail"
	"strings"
)

// NormalizeEmail accepts one plain address (no display name, no angle
// brackets, no list), at most 254 bytes, and returns it lower-cased. It is
// the one check of an email typed by a person, on the sign-in page and in
// the CLI's apps add --email: an owner email is shown on pages, so what
// one door refuses (`"><script>…@x.example`) the other must refuse too.
func NormalizeEmail(v string) (string, error) {
	bad := Errorf(ErrnoInvalidField, "email must be one plain address, such as dev@beerchat.example")
	v = strings.ToLower(strings.TrimSpace(v))
	if v == "" || len(v) > 254 || !strings.Contains(v, "@") {
		return "", bad
	}
	a, err := mail.ParseAddress(v)
	if err != nil || a.Address != v || a.Name != "" {
		return "", bad
	}
	return v, nil
}
