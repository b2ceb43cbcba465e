package ws_test

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
)

// /metrics counts what was stored, and the commits and writes that stored
// it: every write in some commit, no commit without a write.
func TestMetricsCountStoredNotificationsAndCommits(t *testing.T) {
	h := newHarness(t, nil)
	puid := h.grant("ann@example.com", h.app)
	before := h.metrics()
	for _, m := range []string{"one", "two"} {
		if status, body, _ := h.post(int64(h.app), h.key, "["+item(puid, m)+"]"); status != 200 {
			t.Fatalf("%d %s", status, body)
		}
	}
	after := h.metrics()
	if after["presence_goroutines"] < 1 {
		t.Fatalf("presence_goroutines = %d", after["presence_goroutines"])
	}
	if d := after["presence_notifications_stored_total"] - before["presence_notifications_stored_total"]; d != 2 {
		t.Fatalf("stored_total rose by %d, want 2", d)
	}
	commits := after["presence_store_commits_total"] - before["presence_store_commits_total"]
	writes := after["presence_store_writes_total"] - before["presence_store_writes_total"]
	if commits < 1 || commits > 2 || writes != 2 {
		t.Fatalf("%d commits carried %d writes; want the 2 POSTs' writes in 1 or 2 commits", commits, writes)
	}
}

var metricLine = regexp.MustCompile(`(?m)^(presence_[a-z_]+)\{node="[^"]*"\} (\d+)$`)

// metrics reads the server's unlabelled counters and gauges.
func (h *harness) metrics() map[string]int64 {
	h.t.Helper()
	resp, err := http.Get(h.srv.URL + "/metrics")
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := make(map[string]int64)
	for _, l := range metricLine.FindAllStringSubmatch(string(b), -1) {
		m[l[1]], _ = strconv.ParseInt(l[2], 10, 64)
	}
	return m
}
