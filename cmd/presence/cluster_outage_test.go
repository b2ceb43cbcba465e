package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/presence-service/presence/internal/natstest"
	"github.com/presence-service/presence/internal/pgtest"
	"github.com/presence-service/presence/internal/presencetest"
)

// healthz is the node's /healthz status code.
func (n *node) healthz() int {
	n.t.Helper()
	res, err := http.Get(n.http("/healthz"))
	if err != nil {
		n.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// waitHealthz waits until /healthz answers want, or fails the test.
func (n *node) waitHealthz(want int, within time.Duration) {
	n.t.Helper()
	deadline := time.Now().Add(within)
	for n.healthz() != want {
		if time.Now().After(deadline) {
			n.t.Fatalf("/healthz did not answer %d within %v", want, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PROTOCOL §10: losing one NATS server of three is no outage; losing all
// of them ends every session with errno -4 and /healthz says 503, until
// NATS is back, when the node serves again.
func TestClusterNodeStopsServingWithoutNATS(t *testing.T) {
	pgURL := pgtest.Database(t) // skips without PRESENCE_CLUSTER
	nats := natstest.Start(t, 3)
	dataDir := t.TempDir()
	writeNodeKey(t, dataDir)
	n := startNode(t, clusterConfig(t, "node-a", dataDir, nats.URL(), pgURL, ""))
	app, key := n.newApp("beer.example")
	ann := presencetest.NewBrowser(t, n.http(""))
	ann.Login("ann@example.com")
	puid := ann.Allow(fmt.Sprint(app), "https://beer.example/", "ann")
	feed := presencetest.OpenFeed(t, n.ws(fmt.Sprint("/", app)), key)
	phone, sid := n.device("ann@example.com", "phone", app)

	// One server of three gone: the node's client fails over, and it
	// still serves past the delay after which a real loss would show.
	nats.Kill(0)
	time.Sleep(linkLossDelay + time.Second)
	status(phone, sid, "online", "one NATS server down")
	feed.Expect(puid, "online", "one NATS server down")

	// All of them gone.
	nats.Kill(1)
	nats.Kill(2)
	phone.Expect(`{"result":false,"errno":-4,"reason":"server shutting down: connect again"}`)
	feed.ExpectGone()
	n.waitHealthz(503, 10*time.Second)
	refused := presencetest.Dial(t, n.ws("/presence"))
	refused.Send(fmt.Sprintf(`{"type":"connect","assertion":%q,"application_ids":[%d],"device_id":"phone"}`, n.token("ann@example.com"), app))
	var answer struct {
		Result bool `json:"result"`
		Errno  int  `json:"errno"`
	}
	refused.Decode(&answer)
	if answer.Result || answer.Errno != -4 {
		t.Fatalf("a connect without NATS: %+v, want errno -4", answer)
	}

	// NATS back: the node serves again, and routes again.
	for i := range 3 {
		nats.Restart(i)
	}
	nats.WaitJetStream()
	n.waitHealthz(200, 60*time.Second)
	feed = presencetest.OpenFeed(t, n.ws(fmt.Sprint("/", app)), key)
	phone, sid = n.device("ann@example.com", "phone", app)
	status(phone, sid, "unavailable", "back")
	feed.Expect(puid, "unavailable", "back")
}
