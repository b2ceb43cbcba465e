package ws

import (
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"

	"github.com/presence-service/presence/core"
)

// serveMetrics writes the router's counters in the Prometheus text format.
// A handful of counters does not need the Prometheus client library.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	m := s.router.Metrics
	node := s.cfg.NodeName()
	var b strings.Builder
	metric := func(name, kind, help string, v int64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s{node=%q} %d\n", name, help, name, kind, name, node, v)
	}
	metric("presence_devices_connected", "gauge", "Device sessions connected now.", m.DevicesConnected.Load())
	metric("presence_app_channels", "gauge", "App channels (WebSocket and XMPP) connected now.", m.AppChannels.Load())
	metric("presence_connects_total", "counter", "Device connects accepted.", m.Connects.Load())
	metric("presence_status_requests_total", "counter", "Status requests from devices.", m.StatusUpdates.Load())
	metric("presence_updates_published_total", "counter", "Status updates told to apps (sent or queued).", m.UpdatesPublished.Load())
	metric("presence_notifications_stored_total", "counter", "Live notifications stored.", m.NotificationsStored.Load())
	metric("presence_notifications_pushed_total", "counter", "Live notifications pushed to devices.", m.NotificationsPushed.Load())
	metric("presence_notifications_acked_total", "counter", "Live notifications acked by devices.", m.NotificationsAcked.Load())
	metric("presence_slow_consumer_drops_total", "counter", "Devices dropped because they read too slowly.", m.SlowConsumerDrops.Load())
	metric("presence_goroutines", "gauge", "Goroutines now (an idle device holds none).", int64(runtime.NumGoroutine()))
	metric("presence_file_limit_refusals_total", "counter", "Connections refused at the open-file limit.", m.FileLimitRefusals.Load())
	// The store's group commit: writes/commits is how many writers share
	// each commit and its WAL sync, the figure that says whether the
	// store keeps up (BENCHMARKS.md).
	if commits, writes, ok := s.router.CommitStats(); ok {
		metric("presence_store_commits_total", "counter", "Transactions that committed callers' writes, each made durable by one sync.", int64(commits))
		metric("presence_store_writes_total", "counter", "Writes those transactions carried.", int64(writes))
	}
	errs := m.Errors()
	codes := make([]core.Errno, 0, len(errs))
	for e := range errs {
		codes = append(codes, e)
	}
	slices.Sort(codes)
	b.WriteString("# HELP presence_errors_total Errors answered, by errno.\n# TYPE presence_errors_total counter\n")
	for _, e := range codes {
		fmt.Fprintf(&b, "presence_errors_total{node=%q,errno=\"%d\"} %d\n", node, int(e), errs[e])
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write([]byte(b.String()))
}
