package ws_test

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
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

// /metrics is what Prometheus's own parser reads: the Go and process
// collectors' series, every presence_* name that dashboards use, and
// latency histograms that count real connects, status updates and
// notification commits.
func TestMetricsParseWithPrometheusAndCountLatencies(t *testing.T) {
	h := newHarness(t, nil)
	puid := h.grant("ann@example.com", h.app)
	app := h.appChannel(h.app, h.key)
	dev, sid := h.connect("ann@example.com", "phone", h.app)
	dev.Send(`{"type":"status","session_id":"` + sid + `","status":"online"}`)
	dev.Expect(`{"result":true}`)
	app.Read() // the update reached the app: it was routed
	if status, body, _ := h.post(int64(h.app), h.key, "["+item(puid, "hi")+"]"); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	h.post(int64(h.app), "wrong", "[]")

	families := h.scrape()
	for _, name := range []string{
		"go_goroutines", "go_memstats_heap_alloc_bytes", "go_gc_duration_seconds",
		"process_resident_memory_bytes", "process_open_fds", "process_max_fds", "process_cpu_seconds_total",
		"presence_devices_connected", "presence_app_channels", "presence_connects_total",
		"presence_status_requests_total", "presence_updates_published_total",
		"presence_notifications_stored_total", "presence_notifications_pushed_total",
		"presence_notifications_acked_total", "presence_slow_consumer_drops_total",
		"presence_goroutines", "presence_file_limit_refusals_total",
		"presence_store_commits_total", "presence_store_writes_total", "presence_errors_total",
		"presence_api_key_failures_total", "presence_api_key_checks_refused_total",
	} {
		if families[name] == nil {
			t.Errorf("no %s in /metrics", name)
		}
	}
	for name, want := range map[string]uint64{
		"presence_connect_seconds":             1,
		"presence_status_route_seconds":        1,
		"presence_notification_commit_seconds": 1,
	} {
		f := families[name]
		if f == nil || f.GetType() != dto.MetricType_HISTOGRAM || len(f.Metric) != 1 {
			t.Errorf("%s: %v, want one histogram", name, f)
			continue
		}
		hist := f.Metric[0].GetHistogram()
		if hist.GetSampleCount() != want || hist.GetSampleSum() <= 0 || len(hist.Bucket) == 0 {
			t.Errorf("%s: count %d sum %g, want %d observation taking some time", name, hist.GetSampleCount(), hist.GetSampleSum(), want)
		}
		if last := hist.Bucket[len(hist.Bucket)-1]; last.GetCumulativeCount() != want {
			t.Errorf("%s: %d in its largest bucket (%gs), want %d", name, last.GetCumulativeCount(), last.GetUpperBound(), want)
		}
		if node := f.Metric[0].Label[0]; node.GetName() != "node" || node.GetValue() == "" {
			t.Errorf("%s: label %v, want node", name, node)
		}
	}
	if got := families["presence_api_key_failures_total"].Metric[0].GetCounter().GetValue(); got != 1 {
		t.Errorf("presence_api_key_failures_total = %g, want 1", got)
	}
	var errno40 float64
	for _, m := range families["presence_errors_total"].Metric {
		for _, l := range m.Label {
			if l.GetName() == "errno" && l.GetValue() == "40" {
				errno40 = m.GetCounter().GetValue()
			}
		}
	}
	if errno40 != 1 {
		t.Errorf("presence_errors_total{errno=\"40\"} = %g, want 1", errno40)
	}
}

// scrape reads /metrics with Prometheus's text parser.
func (h *harness) scrape() map[string]*dto.MetricFamily {
	h.t.Helper()
	resp, err := http.Get(h.srv.URL + "/metrics")
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		h.t.Fatalf("Content-Type %q, want the Prometheus text format", ct)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		h.t.Fatalf("Prometheus's parser refused /metrics: %v", err)
	}
	return families
}
