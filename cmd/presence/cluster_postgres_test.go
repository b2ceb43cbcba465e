package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/presence-service/presence/internal/pgtest"
	"github.com/presence-service/presence/internal/presencetest"
)

// registryFailBound is how long a call that needs the registry may take
// to fail while PostgreSQL is away: it must answer, not hang.
const registryFailBound = 5 * time.Second

// quickly runs f and fails the test when it took registryFailBound or
// more.
func quickly(t *testing.T, what string, f func()) {
	t.Helper()
	start := time.Now()
	f()
	if d := time.Since(start); d >= registryFailBound {
		t.Fatalf("%s took %v while PostgreSQL was away: want an answer within %v", what, d, registryFailBound)
	}
}

// connectAnswer connects email's device on the node and returns the raw
// answer.
func (n *node) connectAnswer(email, deviceID string, app int64) string {
	n.t.Helper()
	ws := presencetest.Dial(n.t, n.ws("/presence"))
	ws.Send(fmt.Sprintf(`{"type":"connect","assertion":%q,"application_ids":[%d],"device_id":%q}`, n.token(email), app, deviceID))
	return ws.Read()
}

// appsList runs `presence apps list` against the node's config.
func (n *node) appsList() (string, error) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"apps", "list", "-config", n.config, "--json"}, &out, &errOut)
	return out.String(), err
}

// stopPostgres stops the cluster's PostgreSQL and returns the function
// that starts it again on its data; if the test ends first, cleanup does.
func stopPostgres(t *testing.T, pg *pgtest.Server) (restart func()) {
	t.Helper()
	if err := pg.StopServer(); err != nil {
		t.Fatal(err)
	}
	away := true
	t.Cleanup(func() {
		if away {
			pg.Restart()
		}
	})
	return func() {
		t.Helper()
		away = false
		if err := pg.Restart(); err != nil {
			t.Fatal(err)
		}
	}
}

// PROTOCOL §10 and issue 19: a PostgreSQL restart under three running
// nodes (PostgreSQL is stopped, then started again on its data; the
// nodes are not restarted). While it is away:
//   - live traffic goes on: a connected device's statuses reach the app
//     channel on another node; a device of a user whose grants a node
//     holds connects again there with its app shown; the app's channels
//     open again on every node, and POSTs to a PUID a node has checked
//     before are stored (each node keeps the apps, grants and PUIDs it
//     has looked up: nothing can change in the registry while it is away);
//   - what needs the registry fails at once and says so: /healthz 503
//     naming the registry, a POST to a PUID the node never checked errno
//     50 (the app retries), the key of an app the node never looked up
//     (POST errno 50, app channel HTTP 500), a connect whose grants no
//     node holds errno 50, /me and a grant 500 "please try again", the
//     CLI an error naming database.url; none takes registryFailBound;
//   - and once PostgreSQL is back, the same calls succeed.
func TestClusterPostgresRestartLiveTrafficGoesOn(t *testing.T) {
	pg := pgtest.Local(t) // the server the cluster's database is on; skips with PRESENCE_PG_URL
	nodes := startCluster(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	app, key := a.newApp("beer.example")
	appID := fmt.Sprint(app)
	ann, annPUID := a.grantAs("ann@example.com", app, "ann")
	_, cyPUID := a.grantAs("cy@example.com", app, "cy")    // the POSTs' target; her grants are in no node's cache
	_, evePUID := a.grantAs("eve@example.com", app, "eve") // no node checks her PUID before PostgreSQL stops

	feed := presencetest.OpenFeed(t, b.ws("/"+appID), key)
	phone, phoneSID := c.device("ann@example.com", "phone", app)
	status(phone, phoneSID, "online", "before")
	feed.Expect(annPUID, "online", "before")
	for _, n := range nodes {
		n.mustPostNote(app, key, cyPUID, "before", http.StatusOK) // every node looks the app up
	}
	warmed := time.Now()
	visitor := presencetest.NewBrowser(t, b.http(""))
	visitor.Login("dan@example.com")
	other, otherKey := a.newApp("other.example") // an app no node has looked up

	restart := stopPostgres(t, pg)

	// What needs the registry fails at once, and says so.
	for i, n := range nodes {
		quickly(t, "node "+nodeName(i)+"'s /healthz", func() {
			res, err := http.Get(n.http("/healthz"))
			if err != nil {
				t.Fatal(err)
			}
			body := new(bytes.Buffer)
			body.ReadFrom(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body.String(), "registry not answering") {
				t.Fatalf("node %s's /healthz: %d %q, want 503 naming the registry", nodeName(i), res.StatusCode, body)
			}
		})
		quickly(t, "a POST on node "+nodeName(i), func() {
			if body := n.mustPostNote(app, key, evePUID, "PostgreSQL away", http.StatusInternalServerError); !strings.Contains(body, `"errno":50`) {
				t.Fatalf("POST to a PUID node %s never checked: %s, want errno 50", nodeName(i), body)
			}
		})
		quickly(t, "cy's connect on node "+nodeName(i), func() {
			if got := n.connectAnswer("cy@example.com", "phone", app); got != `{"result":false,"errno":50,"reason":"internal error"}` {
				t.Fatalf("cy's connect on node %s: %s, want errno 50 (never her app ignored)", nodeName(i), got)
			}
		})
	}
	quickly(t, "/me on node A", func() {
		if code, body := ann.Get("/me"); code != http.StatusInternalServerError || !strings.Contains(body, "Please try again") {
			t.Fatalf("/me: %d, want 500 saying to try again:\n%.500s", code, body)
		}
	})
	quickly(t, "a grant on node B", func() { // its page needs the app only: cached
		if res := visitor.Grant(appID, "https://beer.example/", "dan", "allow"); res.StatusCode != http.StatusInternalServerError {
			t.Fatalf("a grant: %d, want 500", res.StatusCode)
		}
	})
	quickly(t, "the key of an app node C never looked up", func() {
		if code, body, err := postNote(c.http(""), other, otherKey, evePUID, "PostgreSQL away"); err != nil || code != http.StatusInternalServerError || !strings.Contains(body, `"errno":50`) {
			t.Fatalf("POST of an app node C never looked up: %d %s %v, want 500 errno 50", code, body, err)
		}
		_, res, err := websocket.DefaultDialer.Dial(c.ws(fmt.Sprint("/", other)), nil)
		if err == nil || res == nil || res.StatusCode != http.StatusInternalServerError {
			t.Fatalf("app channel of an app node C never looked up: %v %v, want HTTP 500", res, err)
		}
	})
	quickly(t, "presence apps list", func() {
		if _, err := a.appsList(); err == nil || !strings.Contains(err.Error(), "database.url") {
			t.Fatalf("apps list: %v, want an error naming database.url", err)
		}
	})

	// Live traffic goes on, on copies older than core's appCacheTTL
	// (2 s): a node that could not fall back on its copy of the app when
	// the registry does not answer would refuse the key, or ignore the app
	// at a connect.
	time.Sleep(time.Until(warmed.Add(3 * time.Second)))
	status(phone, phoneSID, "unavailable", "PostgreSQL away")
	feed.Expect(annPUID, "unavailable", "PostgreSQL away")
	laptop, laptopSID := c.device("ann@example.com", "laptop", app) // fails if the app is ignored
	status(laptop, laptopSID, "online", "laptop")
	feed.Expect(annPUID, "online", "laptop")
	for _, n := range nodes {
		presencetest.OpenFeed(t, n.ws("/"+appID), key)
		n.mustPostNote(app, key, cyPUID, "PostgreSQL away", http.StatusOK) // a PUID the node checked before
	}

	// PostgreSQL back: the same calls succeed, the nodes untouched.
	restart()
	for _, n := range nodes {
		n.waitHealthz(http.StatusOK, 10*time.Second)
		n.mustPostNote(app, key, cyPUID, "PostgreSQL back", http.StatusOK)
	}
	cyPhone, cySID := b.device("cy@example.com", "phone", app)
	for _, want := range []string{"before", "PostgreSQL away", "PostgreSQL back"} { // oldest first, three of each
		for range 3 {
			var pushed struct{ Message string }
			if cyPhone.Decode(&pushed); pushed.Message != want {
				t.Fatalf("cy's pending notifications: got %q, want %q", pushed.Message, want)
			}
		}
	}
	status(cyPhone, cySID, "online", "cy")
	feed.Expect(cyPUID, "online", "cy")
	if code, _ := ann.Get("/me"); code != http.StatusOK {
		t.Fatalf("/me after the restart: %d", code)
	}
	visitor.Allow(appID, "https://beer.example/", "dan")
	presencetest.OpenFeed(t, c.ws(fmt.Sprint("/", other)), otherKey)
	if out, err := a.appsList(); err != nil || !strings.Contains(out, `"app_id":`+appID) {
		t.Fatalf("apps list after the restart: %v %s", err, out)
	}
}
