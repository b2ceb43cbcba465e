package main

import (
	"context"
	"encoding/xml"
	"fmt"
	"net"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"

	"github.com/presence-service/presence/internal/presencetest"
)

// stanza is what the test reads of a presence the component receives.
type stanza struct {
	XMLName xml.Name
	From    string `xml:"from,attr"`
	Type    string `xml:"type,attr"`
	Show    string `xml:"show"`
	Status  string `xml:"status"`
}

// component connects to the node as app's XEP-0114 component with
// mellium's own client and hands every stanza it gets to a channel.
func (n *node) component(app int64, key string) <-chan stanza {
	n.t.Helper()
	nc, err := net.DialTimeout("tcp", n.srv.XMPPAddr, 5*time.Second)
	if err != nil {
		n.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := component.NewSession(ctx, jid.MustParse(fmt.Sprintf("%d.presence.localhost", app)), []byte(key), nc)
	if err != nil {
		n.t.Fatalf("component handshake: %v", err)
	}
	n.t.Cleanup(func() { s.Close(); nc.Close() })
	in := make(chan stanza, 100)
	go s.Serve(xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		var st stanza
		if err := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), r)).Decode(&st); err != nil {
			return err
		}
		in <- st
		return nil
	}))
	return in
}

func expectPresence(t *testing.T, in <-chan stanza, from, typ, show, status string) {
	t.Helper()
	select {
	case st := <-in:
		if st.XMLName.Local != "presence" || st.From != from || st.Type != typ || st.Show != show || st.Status != status {
			t.Fatalf("component got %+v, want presence from %s type %q show %q status %q", st, from, typ, show, status)
		}
	case <-time.After(presencetest.Timeout):
		t.Fatal("component got nothing")
	}
}

// TestAppOnWebSocketAndXMPPAtOnce: every update reaches both channels of
// an app, each in its own wire format.
func TestAppOnWebSocketAndXMPPAtOnce(t *testing.T) {
	n := startNode(t, writeConfig(t, ""))
	app, key := n.newApp("beer.example")
	ann := presencetest.NewBrowser(t, n.http(""))
	ann.Login("ann@example.com")
	puid := ann.Allow(fmt.Sprint(app), "https://beer.example/", "ann")
	user := puid + "@presence.localhost"

	feed := presencetest.OpenFeed(t, n.ws(fmt.Sprint("/", app)), key)
	xmppIn := n.component(app, key)
	phone, sid := n.device("ann@example.com", "phone", app)

	status(phone, sid, "online", "")
	feed.Expect(puid, "online", "")
	expectPresence(t, xmppIn, user, "", "", "")
	status(phone, sid, "unavailable", "lunch")
	feed.Expect(puid, "unavailable", "lunch")
	expectPresence(t, xmppIn, user, "", "away", "lunch")
	status(phone, sid, "offline", "")
	feed.Expect(puid, "offline", "")
	expectPresence(t, xmppIn, user, "unavailable", "", "")
}
