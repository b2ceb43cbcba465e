package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/presence-service/presence/internal/presencetest"
)

// mustPostBatch POSTs one notification for each of puids, in one batch,
// and wants a 200; it returns the answer's queue_size and each item's.
func (n *node) mustPostBatch(app int64, key string, puids ...string) (int, []int) {
	n.t.Helper()
	items := make([]string, len(puids))
	for i, p := range puids {
		items[i] = fmt.Sprintf(`{"UID":%q,"message":"m%d","action":"https://beer.example/r/1"}`, p, i)
	}
	req, err := http.NewRequest("POST", fmt.Sprintf("%s/%d/notification", n.http(""), app), strings.NewReader("["+strings.Join(items, ",")+"]"))
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := noteClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var a presencetest.NotificationAnswer
	if res.StatusCode != http.StatusOK || json.Unmarshal(body, &a) != nil || a.Result != "OK" || len(a.Results) != len(puids) {
		n.t.Fatalf("POST of %d items on %s: %d %s", len(puids), n.srv.HTTPAddr, res.StatusCode, body)
	}
	sizes := make([]int, len(a.Results))
	for i, r := range a.Results {
		sizes[i] = r.QueueSize
	}
	return a.QueueSize, sizes
}

// PROTOCOL §4 on a cluster: the queue_size of each item in a 200 is what
// its queue holds after the batch, capped at notifications.queue_size,
// whichever node took the POST; the answer's own is the last item's.
func TestClusterQueueSizesInAnswersAreExact(t *testing.T) {
	nodes, _ := startClusterWith(t, "[notifications]\nqueue_size = 5\n")
	app, key := nodes[0].newApp("beer.example")
	_, ann := nodes[0].grantAs("ann@example.com", app, "ann")
	_, bob := nodes[1].grantAs("bob@example.com", app, "bob")
	for i, want := range []int{2, 4, 5, 5} { // two items to ann's queue each time: the cap is reached
		n := nodes[i%len(nodes)]
		last, sizes := n.mustPostBatch(app, key, ann, ann)
		if last != want || !reflect.DeepEqual(sizes, []int{want, want}) {
			t.Fatalf("batch %d to ann on node %s: queue_size %d, items %v; want %d", i+1, nodeName(i%len(nodes)), last, sizes, want)
		}
	}
	last, sizes := nodes[2].mustPostBatch(app, key, bob, ann, bob)
	if last != 2 || !reflect.DeepEqual(sizes, []int{2, 5, 2}) {
		t.Fatalf("batch to bob and ann: queue_size %d, items %v; want 2, [2 5 2]", last, sizes)
	}
}

// PROTOCOL §10: a notification to a revoked PUID is refused (404, errno
// 44) on every node within 1 s of the revocation, though every node had
// just taken one for it (and so knew the grant).
func TestClusterNotificationsToARevokedPUIDRefusedOnEveryNodeWithin1s(t *testing.T) {
	nodes := startCluster(t)
	app, key := nodes[1].newApp("beer.example")
	ann, annPUID := nodes[0].grantAs("ann@example.com", app, "ann")
	for _, n := range nodes {
		n.mustPostNote(app, key, annPUID, "before the revoke", http.StatusOK)
	}
	token := ann.CSRF("/me")
	res := ann.Post("/me/grants/"+annPUID+"/revoke", url.Values{"csrf_token": {token}})
	deadline := time.Now().Add(time.Second)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke on node A's /me: %d, want 303", res.StatusCode)
	}
	time.Sleep(time.Until(deadline)) // the contract's bound: what every node does from then on
	for i, n := range nodes {
		code, body, err := postNote(n.http(""), app, key, annPUID, "after the revoke")
		if err != nil || code != http.StatusNotFound || !strings.Contains(body, `"errno":44`) {
			t.Errorf("POST to the revoked PUID on node %s 1 s after the revoke: %d %s %v; want 404, errno 44", nodeName(i), code, body, err)
		}
	}
}
