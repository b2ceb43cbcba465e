package xmpp_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
	pxmpp "github.com/presence-service/presence/xmpp"
)

func notification(to, id, body, url string, receipt bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<message to='%s'", to)
	if id != "" {
		fmt.Fprintf(&b, " id='%s'", id)
	}
	fmt.Fprintf(&b, "><body>%s</body>", body)
	if url != "" {
		fmt.Fprintf(&b, "<x xmlns='jabber:x:oob'><url>%s</url></x>", url)
	}
	if receipt {
		b.WriteString("<request xmlns='urn:xmpp:receipts'/>")
	}
	b.WriteString("</message>")
	return b.String()
}

func TestMessage_QueuedAndPushedWithReceipt(t *testing.T) {
	e := newEnv(t)
	c := e.mustDial()
	d := e.connect("alice@example.com", e.app)

	c.send(notification(userJID(e.alice), "m1", "Fred mentioned you in #beer", "https://beerchat.example/r/beer", true))
	g := c.next()
	if g.XMLName.Local != "message" || g.Received == nil || g.Received.ID != "m1" ||
		g.From != userJID(e.alice) || g.To != e.componentJID(e.app).String() {
		t.Fatalf("got %+v, want a receipt for m1 from alice", g)
	}
	select {
	case n := <-d.notes:
		if n.Message != "Fred mentioned you in #beer" || n.Action != "https://beerchat.example/r/beer" || n.PUID != e.alice || n.AppID != e.app {
			t.Fatalf("device got %+v", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the device got nothing")
	}
	pending, err := e.db.PendingNotifications(context.Background(), "alice@example.com", nil)
	if err != nil || len(pending) != 1 {
		t.Fatalf("queue: %v, %v", pending, err)
	}
}

func TestMessage_WithoutReceiptRequestIsQuiet(t *testing.T) {
	e := newEnv(t)
	c := e.mustDial()
	c.send(notification(userJID(e.bob), "m2", "hello", "", false))
	c.none()
	deadline := time.Now().Add(5 * time.Second)
	for {
		pending, _ := e.db.PendingNotifications(context.Background(), "bob@example.com", nil)
		if len(pending) == 1 && pending[0].Message == "hello" && pending[0].Action == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue: %v", pending)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMessage_Errors(t *testing.T) {
	e := newEnv(t)
	c := e.mustDial()
	other, _ := e.newApp("other.example")
	stranger := e.grant("carol@example.com", other, "carol")
	for _, tc := range []struct {
		name, stanza, cond string
	}{
		{"unknown UID", notification(userJID("nosuchpuid"), "e1", "hi", "", true), "item-not-found"},
		{"another app's user", notification(userJID(stranger), "e2", "hi", "", true), "item-not-found"},
		{"another domain", notification(e.alice+"@elsewhere.example", "e3", "hi", "", false), "item-not-found"},
		{"message too long", notification(userJID(e.alice), "e4", strings.Repeat("a", 513), "", true), "not-acceptable"},
		{"empty body", notification(userJID(e.alice), "e5", "  ", "", true), "not-acceptable"},
		{"http action", notification(userJID(e.alice), "e6", "hi", "http://beerchat.example/", true), "not-acceptable"},
		{"javascript action", notification(userJID(e.alice), "e7", "hi", "javascript:alert(1)", true), "not-acceptable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.send(tc.stanza)
			g := c.next()
			wantError("message", tc.cond)(t, g)
			if g.To != e.componentJID(e.app).String() || g.ID == "" {
				t.Fatalf("error addressed to %q with id %q", g.To, g.ID)
			}
		})
	}
	pending, _ := e.db.PendingNotifications(context.Background(), "alice@example.com", nil)
	if len(pending) != 0 {
		t.Fatalf("refused messages were stored: %v", pending)
	}
}

func TestMessage_BatchWithOneBadItem(t *testing.T) {
	e := newEnv(t)
	c := e.mustDial()
	// Sent in one write, these are likely stored as one batch; the bad
	// one must not sink the others.
	c.send(notification(userJID(e.alice), "b1", "one", "", true) +
		notification(userJID("nosuchpuid"), "b2", "two", "", true) +
		notification(userJID(e.bob), "b3", "three", "", true))
	results := map[string]string{}
	for range 3 {
		g := c.next()
		switch {
		case g.Received != nil:
			results[g.Received.ID] = "stored"
		case g.Type == "error":
			results[g.ID] = g.cond()
		}
	}
	want := map[string]string{"b1": "stored", "b2": "item-not-found", "b3": "stored"}
	if fmt.Sprint(results) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", results, want)
	}
}

func TestMessage_RateLimit(t *testing.T) {
	e := newEnv(t, func(c *pxmpp.Config) { c.NotificationsPerMinute = 2 })
	c := e.mustDial()
	for i := range 3 {
		c.send(notification(userJID(e.alice), fmt.Sprint("r", i), "hi", "", true))
		g := c.next()
		if i < 2 && g.Received == nil {
			t.Fatalf("message %d: got %+v, want a receipt", i, g)
		}
		if i == 2 {
			wantError("message", "policy-violation")(t, g)
			if g.Error.Type != "wait" {
				t.Fatalf("error type %q, want wait", g.Error.Type)
			}
		}
	}
}

func TestIQ_PingAndOthers(t *testing.T) {
	e := newEnv(t)
	c := e.mustDial()
	me := e.componentJID(e.app).String()

	c.send(fmt.Sprintf("<iq type='get' id='ping1' from='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>", me, domain))
	g := c.next()
	if g.XMLName.Local != "iq" || g.Type != "result" || g.ID != "ping1" || g.To != me || g.From != domain {
		t.Fatalf("ping: got %+v", g)
	}

	c.send(fmt.Sprintf("<iq type='get' id='disco1' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", domain))
	g = c.next()
	wantError("iq", "service-unavailable")(t, g)
	if g.ID != "disco1" || g.To != me {
		t.Fatalf("unknown iq: got %+v", g)
	}

	c.send(fmt.Sprintf("<iq type='set' id='set1' to='%s'><query xmlns='jabber:iq:roster'/></iq>", userJID(e.alice)))
	wantError("iq", "service-unavailable")(t, c.next())

	c.send(fmt.Sprintf("<iq type='result' id='r1' to='%s'/>", domain))
	c.none()
}

func TestStanza_FromAndTo(t *testing.T) {
	e := newEnv(t)
	me := e.componentJID(e.app).String()
	for _, tc := range []struct {
		name, stanza string
		cond         string // stream error; "" when the stanza is fine
	}{
		{"from the component", fmt.Sprintf("<iq type='get' id='1' from='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>", me, domain), ""},
		{"from a resource of it", fmt.Sprintf("<iq type='get' id='1' from='%s/bot' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>", me, domain), ""},
		{"from a user of it", fmt.Sprintf("<iq type='get' id='1' from='gw@%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>", me, domain), ""},
		{"without from", fmt.Sprintf("<iq type='get' id='1' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>", domain), ""},
		{"from another component", fmt.Sprintf("<iq type='get' id='1' from='9999.%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>", domain, domain), "invalid-from"},
		{"from a subdomain", fmt.Sprintf("<iq type='get' id='1' from='x.%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>", me, domain), "invalid-from"},
		{"from the server", fmt.Sprintf("<message from='%s' to='%s'><body>hi</body></message>", domain, userJID(e.alice)), "invalid-from"},
		{"from a user", fmt.Sprintf("<presence type='probe' from='%s' to='%s'/>", userJID(e.bob), userJID(e.alice)), "invalid-from"},
		{"without to", "<message><body>hi</body></message>", "improper-addressing"},
		{"malformed to", "<message to='@@'><body>hi</body></message>", "improper-addressing"},
		{"not a stanza", "<foo/>", "unsupported-stanza-type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.mustDial()
			c.send(tc.stanza)
			if tc.cond == "" {
				if g := c.next(); g.Type != "result" {
					t.Fatalf("got %+v, want the ping answered", g)
				}
				c.conn.Close()
				waitGone(t, e)
				return
			}
			if err := c.ended(); err == nil || err.Error() != tc.cond {
				t.Fatalf("got %v, want stream error %s", err, tc.cond)
			}
			waitGone(t, e)
		})
	}
}

// waitGone waits until the server has let go of the app's component, so
// that the next dial is not a conflict (the detach and the release are
// one step to a newcomer's claim: Server.letGo).
func waitGone(t *testing.T, e *env) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.router.Stats().AppChannels > 0 {
		if time.Now().After(deadline) {
			t.Fatal("component still attached")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The router is not blocked by a component that does not read: its
// updates coalesce in the outbox, the write deadline drops it.
func TestWriter_SlowComponentDoesNotBlockRouter(t *testing.T) {
	e := newEnv(t, func(c *pxmpp.Config) { c.WriteTimeout = 300 * time.Millisecond })
	nc := rawConnect(t, e.addr, e.componentJID(e.app).String(), e.key) // never read again
	defer nc.Close()
	d := e.connect("alice@example.com", e.app)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 5000 {
			st := core.Online
			if i%2 == 1 {
				st = core.Unavailable
			}
			e.setStatus(d, st, fmt.Sprintf("%d %s", i, strings.Repeat("x", 130)))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("SetStatus blocked behind the component")
	}
}
