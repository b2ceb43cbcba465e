package xmpp_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/stream"
)

const billionLaughs = `<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>`

// Each payload, sent after the handshake, must end the stream with
// policy-violation, and the server must go on serving.
func TestLimits_PolicyViolation(t *testing.T) {
	e := newEnv(t)
	alice := userJID(e.alice)
	for _, tc := range []struct {
		name, payload string
	}{
		{"oversize body", fmt.Sprintf("<message to='%s'><body>%s</body></message>", alice, strings.Repeat("a", 70<<10))},
		{"oversize start tag", fmt.Sprintf("<message to='%s' x='%s'><body>hi</body></message>", alice, strings.Repeat("a", 70<<10))},
		{"many small children", fmt.Sprintf("<message to='%s'>%s</message>", alice, strings.Repeat("<a/>", 20<<10))},
		{"billion laughs", billionLaughs + fmt.Sprintf("<message to='%s'><body>&lol9;</body></message>", alice)},
		{"undeclared entity", fmt.Sprintf("<message to='%s'><body>&lol9;</body></message>", alice)},
		{"entity in an attribute", fmt.Sprintf("<message to='%s' id='&lol9;'><body>hi</body></message>", alice)},
		{"comment", fmt.Sprintf("<message to='%s'><!-- hi --><body>hi</body></message>", alice)},
		{"processing instruction", fmt.Sprintf("<message to='%s'><?php echo 1; ?><body>hi</body></message>", alice)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.mustDial()
			go io.WriteString(c.conn, tc.payload) // may block: the server stops reading
			err := c.ended()
			if !errors.Is(err, stream.PolicyViolation) {
				t.Fatalf("got %v, want policy-violation", err)
			}
			c.conn.Close()
			waitGone(t, e)
		})
	}
	// Still serving.
	c := e.mustDial()
	c.send(fmt.Sprintf("<iq type='get' id='p' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>", domain))
	if g := c.next(); g.Type != "result" {
		t.Fatalf("after the attacks: %+v", g)
	}
}

// Right under the limit is fine; the limit is per stanza, not per stream.
func TestLimits_BigButAllowed(t *testing.T) {
	e := newEnv(t)
	c := e.mustDial()
	ping := fmt.Sprintf("<iq type='get' id='p' to='%s'><ping xmlns='urn:xmpp:ping'/>%%s</iq>", domain)
	filler := "<x>" + strings.Repeat("a", 60<<10) + "</x>"
	for range 3 {
		c.send(fmt.Sprintf(ping, filler))
		if g := c.next(); g.Type != "result" {
			t.Fatalf("got %+v", g)
		}
	}
	// Whitespace keepalives never count, however many.
	c.send(strings.Repeat(" \n", 100<<10))
	c.send(fmt.Sprintf(ping, ""))
	if g := c.next(); g.Type != "result" {
		t.Fatalf("after keepalives: %+v", g)
	}
}

// A DTD before the stream header gets our header, then the error.
func TestLimits_BombBeforeTheHeader(t *testing.T) {
	e := newEnv(t)
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	to := e.componentJID(e.app).String()
	go fmt.Fprintf(nc, "<?xml version='1.0'?>%s<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='%s'>&lol9;", billionLaughs, to)
	got, _ := io.ReadAll(nc)
	if !strings.Contains(string(got), "<stream:stream") || !strings.Contains(string(got), "<policy-violation") {
		t.Fatalf("got %q, want our header and policy-violation", got)
	}
}
