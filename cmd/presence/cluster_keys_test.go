package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"mellium.im/xmpp/stream"

	"github.com/presence-service/presence/internal/presencetest"
)

// noteClient is the HTTP client of notification POSTs in the cluster
// tests: its timeout turns a node that hangs into a failed request.
var noteClient = &http.Client{Timeout: 10 * time.Second}

// postNote POSTs one notification for puid to the node at base
// (http://host:port) as app with key, and returns the HTTP status and
// body. It never fails the test, so that load goroutines may call it.
func postNote(base string, app int64, key, puid, message string) (int, string, error) {
	body := fmt.Sprintf(`[{"UID":%q,"message":%q,"action":"https://beer.example/r/1"}]`, puid, message)
	req, err := http.NewRequest("POST", fmt.Sprintf("%s/%d/notification", base, app), strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := noteClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	answer, err := io.ReadAll(res.Body)
	return res.StatusCode, string(answer), err
}

// mustPostNote POSTs one notification and wants the status code want.
func (n *node) mustPostNote(app int64, key, puid, message string, want int) string {
	n.t.Helper()
	code, body, err := postNote(n.http(""), app, key, puid, message)
	if err != nil || code != want {
		n.t.Fatalf("POST on %s: %d %s %v, want %d", n.srv.HTTPAddr, code, body, err, want)
	}
	return body
}

// grantAs signs in as email on the node's pages and grants app as
// userString (on https://beer.example/, the domain of the tests' apps);
// it returns the signed-in browser and the PUID.
func (n *node) grantAs(email string, app int64, userString string) (*presencetest.Browser, string) {
	n.t.Helper()
	b := presencetest.NewBrowser(n.t, n.http(""))
	b.Login(email)
	return b, b.Allow(fmt.Sprint(app), "https://beer.example/", userString)
}

// within1s fails the test when more than a second has passed since at:
// PROTOCOL §10's bound for a change to take effect on every node.
func within1s(t *testing.T, at time.Time, what string) {
	t.Helper()
	if d := time.Since(at); d > time.Second {
		t.Fatalf("%s %v after the change: more than 1 s", what, d)
	}
}

// nodeName is how the cluster tests name nodes[i]: A, B, C.
func nodeName(i int) string { return string(rune('A' + i)) }

// PROTOCOL §10: a key rotated by the CLI is refused on every node within
// 1 s. Every node had the app cached (a POST with the old key just
// before: a node trusts a cached app for 2 s, so only the invalidation
// on the bus can make the bound) and holds an app channel opened with
// the old key; node C also its XMPP component. The CLI runs against node
// B's presence.toml, in this process, as an operator runs it on a host.
func TestClusterKeyRotatedByCLIRefusedOnEveryNodeWithin1s(t *testing.T) {
	nodes := startCluster(t)
	app, oldKey := nodes[0].newApp("beer.example")
	appID := fmt.Sprint(app)
	_, puid := nodes[0].grantAs("ann@example.com", app, "ann")
	_, bobPUID := nodes[0].grantAs("bob@example.com", app, "bob") // the POSTs' target: no device of his connects

	var feeds [3]*presencetest.Feed
	for i, n := range nodes {
		feeds[i] = presencetest.OpenFeed(t, n.ws("/"+appID), oldKey)
	}
	comp := nodes[2].componentSession(app, oldKey)
	for _, n := range nodes {
		n.mustPostNote(app, oldKey, bobPUID, "before the rotation", http.StatusOK)
	}

	var rotated struct {
		AppID  int64  `json:"app_id"`
		APIKey string `json:"api_key"`
	}
	nodes[1].cli(&rotated, "apps", "rotate-key", appID)
	at := time.Now()
	newKey := rotated.APIKey
	if rotated.AppID != app || len(newKey) != 1024 || newKey == oldKey {
		t.Fatalf("apps rotate-key: %+v", rotated)
	}

	// Open channels with the old key end (close 1008, as a wrong key's).
	for i, f := range feeds {
		if code := f.ExpectClosed(); code != websocket.ClosePolicyViolation {
			t.Fatalf("node %s's app channel closed with %d, want 1008", nodeName(i), code)
		}
		within1s(t, at, "node "+nodeName(i)+"'s app channel closed")
	}
	select {
	case err := <-comp.ended:
		if !errors.Is(err, stream.Reset) {
			t.Fatalf("node C's component ended with %v, want stream error reset", err)
		}
	case <-time.After(time.Second - time.Since(at)):
		t.Fatal("node C's component still open 1 s after the rotation")
	}
	// The old key is refused by every node's POST (401, errno 40). A node
	// may answer a POST it took before the invalidation arrived: each is
	// asked until it refuses, within the second.
	for i, n := range nodes {
		for {
			code, body, err := postNote(n.http(""), app, oldKey, bobPUID, "with the old key")
			if err != nil {
				t.Fatal(err)
			}
			if code == http.StatusUnauthorized && strings.Contains(body, `"errno":40`) {
				break
			}
			if code != http.StatusOK {
				t.Fatalf("POST with the old key on node %s: %d %s, want 401 errno 40", nodeName(i), code, body)
			}
			within1s(t, at, "node "+nodeName(i)+" still took the old key")
			time.Sleep(10 * time.Millisecond)
		}
		within1s(t, at, "node "+nodeName(i)+" refused the old key")
	}
	// And by every new channel: app channels on every node, components.
	for i, n := range nodes {
		c := presencetest.Dial(t, n.ws("/"+appID))
		c.Send(`{"key":"` + oldKey + `"}`)
		c.Expect(`{"result":false,"errno":40,"reason":"wrong API key"}`)
		if _, err := n.dialComponent(app, oldKey); !errors.Is(err, stream.NotAuthorized) {
			t.Fatalf("component with the old key on node %s: %v, want not-authorized", nodeName(i), err)
		}
	}

	// The new key works everywhere: POSTs, app channels, a component, and
	// they all get a status set on node A.
	for i, n := range nodes {
		n.mustPostNote(app, newKey, bobPUID, "with the new key", http.StatusOK)
		feeds[i] = presencetest.OpenFeed(t, n.ws("/"+appID), newKey)
	}
	comp = nodes[2].componentSession(app, newKey)
	phone, sid := nodes[0].device("ann@example.com", "phone", app)
	status(phone, sid, "online", "new key")
	for _, f := range feeds {
		f.Expect(puid, "online", "new key")
	}
	expectPresence(t, comp.in, puid+"@presence.localhost", "", "", "new key")
}

// PROTOCOL §10: a revocation made on node A's pages ends the app's view
// on nodes B and C within 1 s: their channels get the PUID's last
// offline, then nothing more of it, and POSTs to it are refused on every
// node.
func TestClusterRevocationOnNodeAEndsTheAppsViewOnBAndCWithin1s(t *testing.T) {
	nodes := startCluster(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	app, key := b.newApp("beer.example")
	appID := fmt.Sprint(app)
	ann, annPUID := a.grantAs("ann@example.com", app, "ann")
	_, bobPUID := a.grantAs("bob@example.com", app, "bob")

	feedB := presencetest.OpenFeed(t, b.ws("/"+appID), key)
	comp := c.componentSession(app, key)
	feedC := presencetest.OpenFeed(t, c.ws("/"+appID), key)
	annPhone, annSID := a.device("ann@example.com", "phone", app)
	bobPhone, bobSID := b.device("bob@example.com", "phone", app)
	status(annPhone, annSID, "online", "here")
	feedB.Expect(annPUID, "online", "here")
	feedC.Expect(annPUID, "online", "here")
	expectPresence(t, comp.in, annPUID+"@presence.localhost", "", "", "here")

	token := ann.CSRF("/me")
	res := ann.Post("/me/grants/"+annPUID+"/revoke", url.Values{"csrf_token": {token}})
	at := time.Now()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke on node A's /me: %d, want 303", res.StatusCode)
	}
	feedB.Expect(annPUID, "offline", "")
	within1s(t, at, "node B's channel got the last offline")
	feedC.Expect(annPUID, "offline", "")
	within1s(t, at, "node C's channel got the last offline")
	expectPresence(t, comp.in, annPUID+"@presence.localhost", "unavailable", "", "")
	within1s(t, at, "node C's component got the last offline")

	// Nothing more of ann's PUID: her next status is not routed to the
	// app; bob's, set after it, is the next thing each channel gets.
	status(annPhone, annSID, "online", "after the revoke")
	status(bobPhone, bobSID, "online", "bob")
	feedB.Expect(bobPUID, "online", "bob")
	feedC.Expect(bobPUID, "online", "bob")
	expectPresence(t, comp.in, bobPUID+"@presence.localhost", "", "", "bob")
	for _, n := range nodes {
		if body := n.mustPostNote(app, key, annPUID, "to a revoked PUID", http.StatusNotFound); !strings.Contains(body, `"errno":44`) {
			t.Fatalf("POST to a revoked PUID: %s, want errno 44", body)
		}
	}
}
