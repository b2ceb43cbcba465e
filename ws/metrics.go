package ws

import (
	"net/http"
	"runtime"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/presence-service/presence/core"
)

// metricsHandler serves /metrics with the Prometheus client: the Go
// runtime's (go_*) and the process's (process_*: memory, open files, CPU)
// collectors, and the router's counters, gauges and latency histograms,
// read from core.Metrics at each scrape. Each presence_* series carries
// the node's name as the label node.
func (s *Server) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&routerCollector{s: s},
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogErrorLog{s}})
}

// slogErrorLog sends the exporter's own errors (a collector that failed)
// to the server's log.
type slogErrorLog struct{ s *Server }

func (l slogErrorLog) Println(v ...any) { l.s.log.Error("metrics", "err", v) }

// routerCollector turns core.Metrics into Prometheus series at scrape
// time: the router keeps plain atomics on its hot paths, and a scrape
// reads each once.
type routerCollector struct{ s *Server }

type metricDesc struct {
	desc *prometheus.Desc
	kind prometheus.ValueType
	read func(m *core.Metrics) float64
}

func desc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, []string{"node"}, nil)
}

var (
	routerMetrics = []metricDesc{
		{desc("presence_devices_connected", "Device sessions connected now."), prometheus.GaugeValue, func(m *core.Metrics) float64 { return float64(m.DevicesConnected.Load()) }},
		{desc("presence_app_channels", "App channels (WebSocket and XMPP) connected now."), prometheus.GaugeValue, func(m *core.Metrics) float64 { return float64(m.AppChannels.Load()) }},
		{desc("presence_connects_total", "Device connects accepted."), prometheus.CounterValue, func(m *core.Metrics) float64 { return float64(m.Connects.Load()) }},
		{desc("presence_status_requests_total", "Status requests from devices."), prometheus.CounterValue, func(m *core.Metrics) float64 { return float64(m.StatusUpdates.Load()) }},
		{desc("presence_updates_published_total", "Status updates told to apps (sent or queued)."), prometheus.CounterValue, func(m *core.Metrics) float64 { return float64(m.UpdatesPublished.Load()) }},
		{desc("presence_notifications_stored_total", "Live notifications stored."), prometheus.CounterValue, func(m *core.Metrics) float64 { return float64(m.NotificationsStored.Load()) }},
		{desc("presence_notifications_pushed_total", "Live notifications pushed to devices."), prometheus.CounterValue, func(m *core.Metrics) float64 { return float64(m.NotificationsPushed.Load()) }},
		{desc("presence_notifications_acked_total", "Live notifications acked by devices."), prometheus.CounterValue, func(m *core.Metrics) float64 { return float64(m.NotificationsAcked.Load()) }},
		{desc("presence_slow_consumer_drops_total", "Devices dropped because they read too slowly."), prometheus.CounterValue, func(m *core.Metrics) float64 { return float64(m.SlowConsumerDrops.Load()) }},
		{desc("presence_goroutines", "Goroutines now (an idle device holds none)."), prometheus.GaugeValue, func(*core.Metrics) float64 { return float64(runtime.NumGoroutine()) }},
		{desc("presence_file_limit_refusals_total", "Connections refused at the open-file limit."), prometheus.CounterValue, func(m *core.Metrics) float64 { return float64(m.FileLimitRefusals.Load()) }},
		{desc("presence_api_key_failures_total", "API keys checked and found wrong (POST, app WebSocket, XMPP handshake)."), prometheus.CounterValue, func(m *core.Metrics) float64 { return float64(m.KeyChecksFailed.Load()) }},
		{desc("presence_status_queue_write_failures_total", "Writes of status updates to the cluster's queue that failed and are tried again."), prometheus.CounterValue, func(m *core.Metrics) float64 { return float64(m.StatusQueueFailures.Load()) }},
		{desc("presence_api_key_checks_refused_total", "API-key checks refused with errno 29: the source or the app had too many wrong keys."), prometheus.CounterValue, func(m *core.Metrics) float64 { return float64(m.KeyChecksRefused.Load()) }},
	}
	routerHistograms = []struct {
		desc *prometheus.Desc
		of   func(m *core.Metrics) *core.Histogram
	}{
		{desc("presence_connect_seconds", "A device connect in the router: grants, replacing an older session, telling apps."), func(m *core.Metrics) *core.Histogram { return m.ConnectSeconds }},
		{desc("presence_status_route_seconds", "A device's status update routed to its apps' channels."), func(m *core.Metrics) *core.Histogram { return m.RouteSeconds }},
		{desc("presence_notification_commit_seconds", "A notification batch, from the router's call to its durable commit."), func(m *core.Metrics) *core.Histogram { return m.CommitSeconds }},
	}
	// The store's group commit: writes/commits is how many writers share
	// each commit and its WAL sync, the figure that says whether the
	// store keeps up (BENCHMARKS.md).
	storeCommits = desc("presence_store_commits_total", "Transactions that committed callers' writes, each made durable by one sync.")
	storeWrites  = desc("presence_store_writes_total", "Writes those transactions carried.")
	errorsDesc   = prometheus.NewDesc("presence_errors_total", "Errors answered, by errno.", []string{"node", "errno"}, nil)
)

func (c *routerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range routerMetrics {
		ch <- d.desc
	}
	for _, h := range routerHistograms {
		ch <- h.desc
	}
	ch <- storeCommits
	ch <- storeWrites
	ch <- errorsDesc
}

func (c *routerCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.s.router.Metrics
	node := c.s.cfg.NodeName()
	for _, d := range routerMetrics {
		ch <- prometheus.MustNewConstMetric(d.desc, d.kind, d.read(m), node)
	}
	for _, h := range routerHistograms {
		count, sum, buckets := h.of(m).Snapshot()
		ch <- prometheus.MustNewConstHistogram(h.desc, count, sum, buckets, node)
	}
	if commits, writes, ok := c.s.router.CommitStats(); ok {
		ch <- prometheus.MustNewConstMetric(storeCommits, prometheus.CounterValue, float64(commits), node)
		ch <- prometheus.MustNewConstMetric(storeWrites, prometheus.CounterValue, float64(writes), node)
	}
	errs := m.Errors()
	codes := make([]core.Errno, 0, len(errs))
	for e := range errs {
		codes = append(codes, e)
	}
	slices.Sort(codes)
	for _, e := range codes {
		ch <- prometheus.MustNewConstMetric(errorsDesc, prometheus.CounterValue, float64(errs[e]), node, strconv.Itoa(int(e)))
	}
}
