package xmpp

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/presence-service/presence/core"
)

// decodedPresence is what a component's XML parser makes of a stanza.
type decodedPresence struct {
	XMLName xml.Name
	ID      string  `xml:"id,attr"`
	From    string  `xml:"from,attr"`
	To      string  `xml:"to,attr"`
	Type    string  `xml:"type,attr"`
	Show    *string `xml:"show"`
	Status  *string `xml:"status"`
	Delay   *struct {
		XMLName xml.Name
		From    string `xml:"from,attr"`
		Stamp   string `xml:"stamp,attr"`
	} `xml:"urn:xmpp:delay delay"`
}

func decodePresence(t testing.TB, b []byte) decodedPresence {
	t.Helper()
	var p decodedPresence
	if err := xml.Unmarshal(b, &p); err != nil {
		t.Fatalf("%q: %v", b, err)
	}
	if p.XMLName.Space != "jabber:component:accept" || p.XMLName.Local != "presence" {
		t.Fatalf("%q: element %v, want presence in jabber:component:accept", b, p.XMLName)
	}
	return p
}

// TestAppendPresence: each status of PROTOCOL §7's table, as a
// component's parser reads it.
func TestAppendPresence(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	from, to := "p1@presence.example", "7.presence.example"
	str := func(s string) *string { return &s }
	for _, tc := range []struct {
		name         string
		u            core.StatusUpdate
		typ          string
		show, status *string
		stamp        string
	}{
		{"online", core.StatusUpdate{Status: core.Online, At: now}, "", nil, nil, ""},
		{"online with a message", core.StatusUpdate{Status: core.Online, Message: "at <work> & \"busy\"", At: now},
			"", nil, str("at <work> & \"busy\""), ""},
		{"unavailable", core.StatusUpdate{Status: core.Unavailable, Message: "brb", At: now}, "", str("away"), str("brb"), ""},
		{"offline drops the message", core.StatusUpdate{Status: core.Offline, Message: "gone", At: now}, "unavailable", nil, nil, ""},
		{"an update that waited carries its time", core.StatusUpdate{Status: core.Online, At: now.Add(-3 * time.Second)},
			"", nil, nil, "2026-11-25T11:59:57.000Z"},
		{"a live one does not", core.StatusUpdate{Status: core.Online, At: now.Add(-time.Second)}, "", nil, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := appendPresence(nil, 35, from, to, tc.u, now)
			p := decodePresence(t, b)
			if p.ID != "pz" || p.From != from || p.To != to || p.Type != tc.typ {
				t.Fatalf("%s: id %q from %q to %q type %q", b, p.ID, p.From, p.To, p.Type)
			}
			if (p.Show == nil) != (tc.show == nil) || p.Show != nil && *p.Show != *tc.show {
				t.Fatalf("%s: show %v, want %v", b, p.Show, tc.show)
			}
			if (p.Status == nil) != (tc.status == nil) || p.Status != nil && *p.Status != *tc.status {
				t.Fatalf("%s: status %v, want %v", b, p.Status, tc.status)
			}
			switch {
			case tc.stamp == "" && p.Delay != nil:
				t.Fatalf("%s: a delay on a live update", b)
			case tc.stamp != "" && (p.Delay == nil || p.Delay.Stamp != tc.stamp || p.Delay.From != "presence.example"):
				t.Fatalf("%s: delay %+v, want stamp %s from presence.example", b, p.Delay, tc.stamp)
			}
		})
	}
}

// TestAppendEscaped_AsEncodingXML: the escaping is encoding/xml's, so the
// stanzas read as they did when the encoder wrote them.
func TestAppendEscaped_AsEncodingXML(t *testing.T) {
	for _, s := range []string{
		"", "plain", `<>&"'`, "tab\tnl\ncr\r", "nul\x00bel\x07", "del\x7f",
		"héllo wörld ☃ 𝄞", "bad \xff utf-8 \xc3", "\uFFFE\uFFFF\uFFFD", "\U0010FFFF",
	} {
		var want bytes.Buffer
		xml.EscapeText(&want, []byte(s))
		if got := appendEscaped(nil, s); string(got) != want.String() {
			t.Errorf("%q: got %q, encoding/xml %q", s, got, want.String())
		}
	}
}

// FuzzAppendPresence: whatever the message and addresses, the stanza is
// well-formed and reads back as the message with what XML cannot carry
// replaced by U+FFFD.
func FuzzAppendPresence(f *testing.F) {
	f.Add("p1@presence.example", "7.presence.example", "hello", uint8(0))
	f.Add("a&b@x", "<to>", "a\r\nb\t<&>\"'", uint8(1))
	f.Add("x", "y", "\xff\x00\uFFFE\U0001F600", uint8(2))
	f.Fuzz(func(t *testing.T, from, to, msg string, status uint8) {
		u := core.StatusUpdate{Status: []core.Status{core.Online, core.Unavailable, core.Offline}[status%3], Message: msg}
		b := appendPresence(nil, uint64(len(msg)), from, to, u, time.Now())
		d := xml.NewDecoder(bytes.NewReader(b))
		for {
			if _, err := d.Token(); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("%q: not well-formed: %v", b, err)
			}
		}
		p := decodePresence(t, b)
		clean := func(s string) string {
			return strings.Map(func(r rune) rune {
				if r == utf8.RuneError || r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xFFFE || r == 0xFFFF {
					return utf8.RuneError
				}
				return r
			}, s)
		}
		if p.From != clean(from) || p.To != clean(to) {
			t.Fatalf("%q: from %q to %q", b, p.From, p.To)
		}
		if u.Status != core.Offline && msg != "" && (p.Status == nil || *p.Status != clean(msg)) {
			t.Fatalf("%q: status %v, want %q", b, p.Status, clean(msg))
		}
	})
}

func BenchmarkAppendPresence(b *testing.B) {
	u := core.StatusUpdate{Status: core.Unavailable, Message: "in a meeting", At: time.Now()}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for i := range b.N {
		buf = appendPresence(buf[:0], uint64(i), "e3b0c44298fc1c149afbf4c8996fb924@presence.example", "7.presence.example", u, u.At)
	}
}
