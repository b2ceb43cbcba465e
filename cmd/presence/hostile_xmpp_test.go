package main

import (
	"crypto/sha1" // #nosec G505: XEP-0114 fixes SHA-1 for the handshake digest
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The XMPP component stream (PROTOCOL §7), spoken by hand: what a broken
// or hostile component sends before and after its handshake.

const xmppDomain = "presence.localhost"

// xstream is a raw component connection.
type xstream struct {
	t   *testing.T
	c   net.Conn
	got strings.Builder
}

func (h *hostile) xdial(t *testing.T, src string) *xstream {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d = dialerFrom(src)
	}
	c, err := d.Dial("tcp", h.n.srv.XMPPAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &xstream{t: t, c: c}
}

func (x *xstream) send(s string) {
	x.t.Helper()
	x.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(x.c, s); err != nil {
		x.t.Fatalf("send: %v", err)
	}
}

// until reads until what was received matches re, or the stream ends or
// 5 s pass; it returns the first submatch (or the whole match).
func (x *xstream) until(re *regexp.Regexp) (string, bool) {
	x.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	buf := make([]byte, 4096)
	for {
		if m := re.FindStringSubmatch(x.got.String()); m != nil {
			return m[len(m)-1], true
		}
		x.c.SetReadDeadline(deadline)
		n, err := x.c.Read(buf)
		x.got.Write(buf[:n])
		if err != nil {
			m := re.FindStringSubmatch(x.got.String())
			if m == nil {
				return "", false
			}
			return m[len(m)-1], true
		}
	}
}

var (
	streamID = regexp.MustCompile(`<stream:stream [^>]*id=['"]([^'"]+)['"]`)
	// Before the handshake the server writes <stream:error>; after it,
	// mellium's encoder writes the same element as <error xmlns=…streams>.
	streamError = regexp.MustCompile(`<(?:stream:error|error xmlns=["']http://etherx.jabber.org/streams["'])>\s*<([a-z-]+)`)
	handshakeOK = regexp.MustCompile(`<handshake\s*/>|<handshake></handshake>`)
)

func header(to string) string {
	return fmt.Sprintf(`<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='%s'>`, to)
}

// expectStreamError wants the stream to end with condition cond.
func (x *xstream) expectStreamError(cond string) {
	x.t.Helper()
	got, ok := x.until(streamError)
	if !ok || got != cond {
		x.t.Fatalf("stream error %q (received %.300q), want %s", got, x.got.String(), cond)
	}
}

// handshake opens app's stream with key and wants <handshake/>.
func (x *xstream) handshake(app int64, key string) {
	x.t.Helper()
	x.send(header(fmt.Sprintf("%d.%s", app, xmppDomain)))
	id, ok := x.until(streamID)
	if !ok {
		x.t.Fatalf("no stream id in %q", x.got.String())
	}
	sum := sha1.Sum([]byte(id + key)) // #nosec G401: fixed by XEP-0114
	x.send("<handshake>" + hex.EncodeToString(sum[:]) + "</handshake>")
	if _, ok := x.until(handshakeOK); !ok {
		x.t.Fatalf("handshake refused: %q", x.got.String())
	}
	x.got.Reset()
}

// connectComponent completes app's handshake on a new stream. The
// previous case's stream of the same component may still be being
// released by the server (conflict): it tries again until it is, for 5 s.
func (h *hostile) connectComponent(t *testing.T, app int64, key string) *xstream {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		x := h.xdial(t, "")
		x.send(header(fmt.Sprintf("%d.%s", app, xmppDomain)))
		id, ok := x.until(streamID)
		if !ok {
			t.Fatalf("no stream id in %q", x.got.String())
		}
		sum := sha1.Sum([]byte(id + key)) // #nosec G401: fixed by XEP-0114
		x.send("<handshake>" + hex.EncodeToString(sum[:]) + "</handshake>")
		got, _ := x.until(regexp.MustCompile(`(<handshake\s*/>|<handshake></handshake>|<stream:error>\s*<[a-z-]+)`))
		switch {
		case strings.HasPrefix(got, "<handshake"):
			x.got.Reset()
			return x
		case strings.HasSuffix(got, "<conflict") && time.Now().Before(deadline):
			x.c.Close()
			continue
		}
		t.Fatalf("handshake of %d: %.300q", app, x.got.String())
	}
}

// healthyComponent is a component connected for the whole test: after
// each case it must still answer an iq ping.
type healthyComponent struct {
	x *xstream
	n int
}

func (hc *healthyComponent) ping(t *testing.T) {
	t.Helper()
	hc.n++
	id := fmt.Sprintf("ping-%d", hc.n)
	hc.x.t = t
	hc.x.send(fmt.Sprintf(`<iq type='get' id='%s' to='%s' from='%s'><ping xmlns='urn:xmpp:ping'/></iq>`, id, xmppDomain, hc.x.from()))
	if _, ok := hc.x.until(regexp.MustCompile(`<iq [^>]*id=['"]` + id + `['"][^>]*type=['"]result['"]|<iq [^>]*type=['"]result['"][^>]*id=['"]` + id + `['"]`)); !ok {
		t.Fatalf("the healthy component's ping %s was not answered: %.300q", id, hc.x.got.String())
	}
	hc.x.got.Reset()
}

var componentFrom string

func (x *xstream) from() string { return componentFrom }

type xmppCase struct {
	name      string
	src       bool                    // dial from a fresh source (the case sends a wrong key)
	handshake bool                    // complete the handshake of the other app first
	send      func(h *hostile) string // what to send (after the handshake, if any)
	cond      string                  // the stream error wanted; "" when a stanza error is wanted
	stanza    *regexp.Regexp          // the error stanza wanted instead
}

func xmppCases(h *hostile) []xmppCase {
	to := func(app int64) string { return fmt.Sprintf("%d.%s", app, xmppDomain) }
	other := to(h.other)
	user := func(puid string) string { return puid + "@" + xmppDomain }
	errCond := func(cond string) *regexp.Regexp {
		return regexp.MustCompile(`type=['"]error['"][\s\S]*<` + cond + ` `)
	}
	return []xmppCase{
		{name: "not XML", send: func(*hostile) string { return "hello there <>\n" }, cond: "not-well-formed"},
		{name: "a stream of the client namespace", send: func(h *hostile) string {
			return `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='` + to(h.app) + `'>`
		}, cond: "invalid-namespace"},
		{name: "a root that is not a stream", send: func(*hostile) string { return `<?xml version='1.0'?><html>` }, cond: "invalid-namespace"},
		{name: "an unknown component", send: func(*hostile) string { return header(to(9999)) }, cond: "host-unknown"},
		{name: "a component of another domain", send: func(*hostile) string { return header("1.elsewhere.example") }, cond: "host-unknown"},
		{name: "a component id with a leading zero", send: func(h *hostile) string { return header("0" + to(h.app)) }, cond: "host-unknown"},
		{name: "the bare domain", send: func(*hostile) string { return header(xmppDomain) }, cond: "host-unknown"},
		{name: "a JID with a localpart", send: func(h *hostile) string { return header("x@" + to(h.app)) }, cond: "host-unknown"},
		{name: "a DOCTYPE", send: func(*hostile) string { return `<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a "aaaa">]>` }, cond: "policy-violation"},
		{name: "a comment before the stream", send: func(*hostile) string { return `<!-- hi -->` }, cond: "policy-violation"},
		{name: "a processing instruction", send: func(h *hostile) string { return `<?evil x?>` + header(to(h.app)) }, cond: "policy-violation"},
		{name: "a wrong handshake", src: true, send: func(h *hostile) string {
			return header(to(h.app)) + "<handshake>0000000000000000000000000000000000000000</handshake>"
		}, cond: "not-authorized"},
		{name: "an empty handshake", src: true, send: func(h *hostile) string { return header(to(h.app)) + "<handshake/>" }, cond: "not-authorized"},
		{name: "a message instead of a handshake", src: true, send: func(h *hostile) string {
			return header(to(h.app)) + "<message to='x'><body>hi</body></message>"
		}, cond: "not-authorized"},
		{name: "an app not activated", src: true, send: func(h *hostile) string {
			return header(to(h.inactive)) + "<handshake>0000000000000000000000000000000000000000</handshake>"
		}, cond: "not-authorized"},
		{name: "a stanza from another JID", handshake: true, send: func(h *hostile) string {
			return fmt.Sprintf(`<presence from='%s' to='%s' type='probe'/>`, to(h.app), user(h.otherPUID))
		}, cond: "invalid-from"},
		{name: "an entity reference after the handshake", handshake: true, send: func(*hostile) string {
			return `<message from='` + other + `' to='x@` + xmppDomain + `'><body>&xxe;</body></message>`
		}, cond: "policy-violation"},
		{name: "a stanza over the size limit", handshake: true, send: func(h *hostile) string {
			return fmt.Sprintf(`<message from='%s' to='%s'><body>%s</body></message>`, other, user(h.otherPUID), strings.Repeat("b", 300<<10))
		}, cond: "policy-violation"},
		{name: "a message to an unknown user", handshake: true, send: func(*hostile) string {
			return `<message id='m1' from='` + other + `' to='0123456789abcdef0123456789abcdef@` + xmppDomain + `'><body>hi</body></message>`
		}, stanza: errCond("item-not-found")},
		{name: "a message to another app's user", handshake: true, send: func(h *hostile) string {
			return fmt.Sprintf(`<message id='m2' from='%s' to='%s'><body>hi</body></message>`, other, user(h.puid))
		}, stanza: errCond("item-not-found")},
		{name: "a message with an empty body", handshake: true, send: func(h *hostile) string {
			return fmt.Sprintf(`<message id='m3' from='%s' to='%s'><body></body></message>`, other, user(h.otherPUID))
		}, stanza: errCond("not-acceptable")},
		{name: "a message with a javascript: action", handshake: true, send: func(h *hostile) string {
			return fmt.Sprintf(`<message id='m4' from='%s' to='%s'><body>hi</body><x xmlns='jabber:x:oob'><url>javascript:alert(1)</url></x></message>`, other, user(h.otherPUID))
		}, stanza: errCond("not-acceptable")},
		{name: "a probe of an unknown user", handshake: true, send: func(*hostile) string {
			return `<presence type='probe' from='` + other + `' to='0123456789abcdef0123456789abcdef@` + xmppDomain + `'/>`
		}, stanza: errCond("item-not-found")},
		{name: "an unknown iq", handshake: true, send: func(*hostile) string {
			return `<iq type='get' id='q1' from='` + other + `' to='` + xmppDomain + `'><query xmlns='jabber:iq:version'/></iq>`
		}, stanza: errCond("service-unavailable")},
	}
}

func TestHostileXMPP(t *testing.T) {
	h := newHostile(t)
	componentFrom = fmt.Sprintf("%d.%s", h.app, xmppDomain)
	healthy := &healthyComponent{x: h.xdial(t, "")}
	healthy.x.handshake(h.app, h.key)
	for _, tc := range xmppCases(h) {
		t.Run(tc.name, func(t *testing.T) {
			src := ""
			if tc.src {
				src = h.source()
			}
			var x *xstream
			if tc.handshake {
				x = h.connectComponent(t, h.other, h.otherKey)
			} else {
				x = h.xdial(t, src)
			}
			x.send(tc.send(h))
			if tc.cond != "" {
				x.expectStreamError(tc.cond)
			} else if _, ok := x.until(tc.stanza); !ok {
				t.Fatalf("no %s in %.400q", tc.stanza, x.got.String())
			}
			if tc.handshake {
				x.send("</stream:stream>")
				// The server ends the component's stream too; then it may connect again.
				x.until(regexp.MustCompile(`</stream:stream>`))
			}
			healthy.ping(t)
		})
	}
	t.Run("a second connection of the same component", func(t *testing.T) {
		x := h.xdial(t, "")
		x.send(header(componentFrom))
		id, _ := x.until(streamID)
		sum := sha1.Sum([]byte(id + h.key)) // #nosec G401: fixed by XEP-0114
		x.send("<handshake>" + hex.EncodeToString(sum[:]) + "</handshake>")
		x.expectStreamError("conflict")
		healthy.ping(t)
	})
}
