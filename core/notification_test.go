package core

import "testing"

// FuzzValidAction: the url.Parse-free fast path accepts only actions that
// url.Parse accepts too.
func FuzzValidAction(f *testing.F) {
	for _, s := range []string{
		"https://beerchat.example/r/beer", "https://a", "https://", "https:///x", "https://a.b-c/d_e~f.g",
		"https://host:443/x", "https://h/%zz", "https://h/ x", "http://h/", "myapp:room/4", "javascript:alert(1)",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if plainHTTPS(s) && !parsedAction(s) {
			t.Fatalf("%q: fast path accepts what url.Parse refuses", s)
		}
		if validAction(s) != (plainHTTPS(s) || parsedAction(s)) {
			t.Fatalf("%q: validAction is not the two paths", s)
		}
	})
}
