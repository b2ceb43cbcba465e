package core

import "testing"

func TestParseAppIDTakesOnlyTheCanonicalForm(t *testing.T) {
	for in, want := range map[string]AppID{
		"1": 1, "421": 421, "9223372036854775807": 1<<63 - 1,
	} {
		if got, ok := ParseAppID(in); !ok || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{
		"", "0", "01", "007", "+1", "-1", " 1", "1 ", "1.0", "1e3", "0x1", "١",
		"9223372036854775808", "18446744073709551616", "99999999999999999999",
	} {
		if got, ok := ParseAppID(in); ok {
			t.Errorf("%q: taken as %d, want refused", in, got)
		}
	}
}
