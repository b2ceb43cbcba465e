package main

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"
	xstanza "mellium.im/xmpp/stanza"

	"github.com/presence-service/presence/internal/natstest"
	"github.com/presence-service/presence/internal/pgtest"
	"github.com/presence-service/presence/internal/presencetest"
)

// startCluster runs three Presence nodes on one embedded three-server
// NATS cluster and one real PostgreSQL database, as a deployment runs
// them: one presence.toml but for the listeners, one data folder's keys.
// It skips without PRESENCE_CLUSTER (pgtest says how to run it).
func startCluster(t *testing.T) [3]*node {
	t.Helper()
	nodes, _ := startClusterWith(t, "")
	return nodes
}

// startClusterWith is startCluster with extra appended to every node's
// presence.toml; it returns the NATS servers too, for tests that kill one.
func startClusterWith(t *testing.T, extra string) ([3]*node, *natstest.Cluster) {
	t.Helper()
	pgURL := pgtest.Database(t)
	nats := natstest.Start(t, 3)
	dataDir := t.TempDir()
	writeNodeKey(t, dataDir)
	var nodes [3]*node
	for i := range nodes {
		nodes[i] = startNode(t, clusterConfig(t, fmt.Sprintf("node-%c", 'a'+i), dataDir, nats.URL(), pgURL, extra))
	}
	return nodes, nats
}

// clusterComponent is an XEP-0114 component session, what it receives,
// and how its stream ended (ended gets Serve's error once).
type clusterComponent struct {
	session *xmpp.Session
	in      chan stanza
	ended   chan error
}

// dialComponent opens app's component stream on the node with key, and
// returns the session or the handshake's error (the stream error a
// refused key gets, as a *stream.Error).
func (n *node) dialComponent(app int64, key string) (*xmpp.Session, error) {
	n.t.Helper()
	nc, err := net.DialTimeout("tcp", n.srv.XMPPAddr, 5*time.Second)
	if err != nil {
		n.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := component.NewSession(ctx, jid.MustParse(fmt.Sprintf("%d.presence.localhost", app)), []byte(key), nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	n.t.Cleanup(func() { s.Close(); nc.Close() })
	return s, nil
}

func (n *node) componentSession(app int64, key string) *clusterComponent {
	n.t.Helper()
	s, err := n.dialComponent(app, key)
	if err != nil {
		n.t.Fatalf("component handshake: %v", err)
	}
	c := &clusterComponent{session: s, in: make(chan stanza, 100), ended: make(chan error, 1)}
	go func() { c.ended <- s.Serve(c.handler()) }()
	return c
}

// handler decodes each stanza the component receives into c.in.
func (c *clusterComponent) handler() xmpp.Handler {
	return xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		var st stanza
		if err := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), r)).Decode(&st); err != nil {
			return err
		}
		c.in <- st
		return nil
	})
}

// TestClusterDeviceAppAndComponentOnThreeNodes: a device on node A, an
// app's WebSocket channel on node B and its XMPP component on node C.
// Every update reaches both channels in order; a probe on C answers the
// status set on A; a notification POSTed to B reaches the device on A; a
// second device of the user on C aggregates with the one on A; the same
// device connecting on B ends its session on A with -2; a notification
// sent over C's component reaches it on B.
func TestClusterDeviceAppAndComponentOnThreeNodes(t *testing.T) {
	nodes := startCluster(t)
	a, b, c := nodes[0], nodes[1], nodes[2]

	app, key := b.newApp("beer.example") // the CLI, on the shared registry
	appID := fmt.Sprint(app)
	ann := presencetest.NewBrowser(t, a.http(""))
	ann.Login("ann@example.com")
	puid := ann.Allow(appID, "https://beer.example/", "ann") // the grant, on node A's pages
	user := puid + "@presence.localhost"

	feed := presencetest.OpenFeed(t, b.ws("/"+appID), key)
	comp := c.componentSession(app, key)
	phone, sid := a.device("ann@example.com", "phone", app)

	steps := []struct{ status, message, show, xmppType string }{
		{"online", "on node A", "", ""},
		{"unavailable", "lunch", "away", ""},
		{"online", "back", "", ""},
		{"offline", "", "", "unavailable"}, // an offline user carries no message
		{"online", "last", "", ""},
	}
	// One at a time: a channel that falls behind coalesces per PUID
	// (PROTOCOL §3), so a burst could skip a middle step by design.
	for _, s := range steps {
		status(phone, sid, s.status, s.message)
		feed.Expect(puid, s.status, s.message)
		expectPresence(t, comp.in, user, s.xmppType, s.show, s.message)
	}

	// A probe on node C answers what the device on node A shows.
	probe := xstanza.Presence{To: jid.MustParse(user), From: jid.MustParse(appID + ".presence.localhost"), Type: xstanza.ProbePresence}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := comp.session.Send(ctx, probe.Wrap(nil)); err != nil {
		t.Fatal(err)
	}
	expectPresence(t, comp.in, user, "", "", "last")

	// A notification POSTed to node B reaches the device on node A at once.
	req, _ := http.NewRequest("POST", b.http("/"+appID+"/notification"),
		strings.NewReader(fmt.Sprintf(`[{"UID":%q,"message":"Bob: a beer on node B?","action":"https://beer.example/r/1"}]`, puid)))
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), `"result":"OK"`) {
		t.Fatalf("POST on node B: %d %s", res.StatusCode, body)
	}
	var pushed struct {
		Type    string `json:"type"`
		ID      string `json:"id"`
		AppID   int64  `json:"app_id"`
		UID     string `json:"UID"`
		Message string `json:"message"`
		Action  string `json:"action"`
	}
	phone.Decode(&pushed)
	if pushed.Type != "notification" || pushed.AppID != app || pushed.UID != puid ||
		pushed.Message != "Bob: a beer on node B?" || pushed.Action != "https://beer.example/r/1" || pushed.ID == "" {
		t.Fatalf("device on node A got %+v", pushed)
	}
	ack, _ := json.Marshal(map[string]any{"type": "ack", "session_id": sid, "ids": []string{pushed.ID}})
	phone.Send(string(ack))
	phone.Expect(`{"result":true}`)

	// A second device of ann, on node C: her status is aggregated over
	// both nodes, so its going offline leaves her online (the phone's).
	laptop, laptopSID := c.device("ann@example.com", "laptop", app)
	status(laptop, laptopSID, "unavailable", "desk")
	status(laptop, laptopSID, "online", "desk")
	feed.Expect(puid, "online", "desk") // the most recent of two online devices
	expectPresence(t, comp.in, user, "", "", "desk")
	status(laptop, laptopSID, "offline", "")
	feed.Expect(puid, "online", "last") // not offline: the phone on node A still shows online
	expectPresence(t, comp.in, user, "", "", "last")

	// One session per (user, device) across the cluster: the phone
	// connecting again, on node B, ends its session on node A with -2,
	// and the app sees no offline between the two.
	phone2, phone2SID := b.device("ann@example.com", "phone", app)
	phone.Expect(`{"result":false,"errno":-2,"reason":"replaced by a newer connection of the same user and device"}`)
	phone.ExpectClosed()
	status(phone2, phone2SID, "unavailable", "moved to node B")
	feed.Expect(puid, "unavailable", "moved to node B")
	expectPresence(t, comp.in, user, "", "away", "moved to node B")

	// A notification sent over node C's component stream reaches the
	// phone, now on node B.
	noteBody := xmlstream.Wrap(xmlstream.Token(xml.CharData("Carol: over XMPP on node C")), xml.StartElement{Name: xml.Name{Local: "body"}})
	note := xstanza.Message{To: jid.MustParse(user), From: jid.MustParse(appID + ".presence.localhost"), Type: xstanza.NormalMessage}
	if err := comp.session.Send(ctx, note.Wrap(noteBody)); err != nil {
		t.Fatal(err)
	}
	pushed.Type, pushed.Message = "", ""
	phone2.Decode(&pushed)
	if pushed.Type != "notification" || pushed.UID != puid || pushed.Message != "Carol: over XMPP on node C" {
		t.Fatalf("the phone on node B got %+v, want the notification sent on node C", pushed)
	}
}

// nextWithin is the feed's next update, waiting up to within (longer
// than presencetest's timeout: a node's death takes seconds to notice).
func nextWithin(t *testing.T, f *presencetest.Feed, within time.Duration) presencetest.Update {
	t.Helper()
	f.Conn.SetReadDeadline(time.Now().Add(within))
	defer f.Conn.SetReadDeadline(time.Time{})
	var batch []presencetest.Update
	for len(batch) == 0 {
		_, data, err := f.Conn.ReadMessage()
		if err != nil {
			t.Fatalf("no update within %v: %v", within, err)
		}
		if err := json.Unmarshal(data, &batch); err != nil {
			t.Fatalf("app frame %s: %v", data, err)
		}
	}
	if len(batch) > 1 {
		t.Fatalf("want one update, got %d at once: %+v", len(batch), batch)
	}
	return batch[0]
}

// PROTOCOL §10: when a node goes, the others notice within 10 s; after
// device.disconnect_grace apps see offline for its users who are not back
// elsewhere, and nothing for those who are.
func TestClusterNodeGoneItsUsersOfflineUnlessBack(t *testing.T) {
	nodes := startCluster(t)
	a, b := nodes[0], nodes[1]
	app, key := b.newApp("beer.example")
	appID := fmt.Sprint(app)
	puids := map[string]string{}
	for _, who := range []string{"ann", "bob"} {
		br := presencetest.NewBrowser(t, a.http(""))
		br.Login(who + "@example.com")
		puids[who] = br.Allow(appID, "https://beer.example/", who)
	}
	feed := presencetest.OpenFeed(t, b.ws("/"+appID), key)
	annPhone, annSID := a.device("ann@example.com", "phone", app)
	bobPhone, bobSID := a.device("bob@example.com", "phone", app)
	status(annPhone, annSID, "online", "on node A")
	feed.Expect(puids["ann"], "online", "on node A")
	status(bobPhone, bobSID, "online", "on node A")
	feed.Expect(puids["bob"], "online", "on node A")

	gone := time.Now()
	a.stop()
	bobPhone.Expect(`{"result":false,"errno":-4,"reason":"server shutting down: connect again"}`)
	bobPhone, bobSID = b.device("bob@example.com", "phone", app) // bob is back, on node B
	status(bobPhone, bobSID, "online", "on node B")
	feed.Expect(puids["bob"], "online", "on node B")
	u := nextWithin(t, feed, 20*time.Second)
	if u.UID != puids["ann"] || u.Status != "offline" {
		t.Fatalf("after node A went, the app got %+v, want ann offline (and nothing for bob, who is back)", u)
	}
	if waited := time.Since(gone); waited > 10*time.Second+300*time.Millisecond {
		t.Fatalf("ann offline %v after node A went: more than 10 s and the grace", waited)
	}
}
