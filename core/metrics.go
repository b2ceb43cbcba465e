package core

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Metrics are the router's counters, gauges and latency histograms; ws
// serves them at /metrics through the Prometheus client. core keeps its
// own plain types so that it imports no exporter.
type Metrics struct {
	DevicesConnected    atomic.Int64 // gauge
	AppChannels         atomic.Int64 // gauge
	Connects            atomic.Int64
	StatusUpdates       atomic.Int64 // status requests from devices
	UpdatesPublished    atomic.Int64 // updates told to apps (sent or queued)
	NotificationsStored atomic.Int64
	NotificationsAcked  atomic.Int64
	NotificationsPushed atomic.Int64
	SlowConsumerDrops   atomic.Int64
	FileLimitRefusals   atomic.Int64
	KeyChecksFailed     atomic.Int64 // wrong API keys
	KeyChecksRefused    atomic.Int64 // key checks refused with errno 29 (KeyGuard)
	StatusQueueFailures atomic.Int64 // writes to a cluster's status queue that failed (tried again)

	// Latencies, in seconds.
	ConnectSeconds *Histogram // Router.Connect: grants, replacing an older session, telling apps
	RouteSeconds   *Histogram // Router.SetStatus: a status update routed to every app's channels
	CommitSeconds  *Histogram // a notification batch, from the router's call to its durable commit

	mu     sync.Mutex // guards: errors
	errors map[Errno]int64
}

// NewMetrics returns zeroed metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		errors:         make(map[Errno]int64),
		ConnectSeconds: NewHistogram(LatencyBuckets),
		RouteSeconds:   NewHistogram(LatencyBuckets),
		CommitSeconds:  NewHistogram(LatencyBuckets),
	}
}

// CountError counts one error answered with errno.
func (m *Metrics) CountError(e Errno) {
	m.mu.Lock()
	m.errors[e]++
	m.mu.Unlock()
}

// Errors returns a copy of the error counts by errno.
func (m *Metrics) Errors() map[Errno]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[Errno]int64, len(m.errors))
	for k, v := range m.errors {
		out[k] = v
	}
	return out
}

// LatencyBuckets are the upper bounds, in seconds, of the router's
// latency histograms: 25 µs (a status routed in memory) to 2.5 s (a
// commit behind a slow disk).
var LatencyBuckets = []float64{
	0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
	0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
}

// Histogram counts observations into fixed buckets without a lock: an
// observation is two atomic adds and a compare-and-swap loop on the sum,
// cheap enough for the status hot path.
type Histogram struct {
	bounds  []float64
	counts  []atomic.Uint64 // counts[i]: observations <= bounds[i] and > bounds[i-1]; the last is +Inf
	count   atomic.Uint64
	sumBits atomic.Uint64 // float64 bits of the sum
}

// NewHistogram returns a histogram with the given ascending upper bounds.
func NewHistogram(bounds []float64) *Histogram {
	return &Histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// Observe records one observation of v seconds.
func (h *Histogram) Observe(v float64) {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	for {
		old := h.sumBits.Load()
		if h.sumBits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			break
		}
	}
	h.count.Add(1)
}

// ObserveSince records the time since start: defer h.ObserveSince(time.Now()).
func (h *Histogram) ObserveSince(start time.Time) { h.Observe(time.Since(start).Seconds()) }

// Snapshot returns the count, the sum and the cumulative count at each
// upper bound, as Prometheus exposes them. Taken while observations go
// on, it may be off by the few in flight, never inconsistent in a way a
// scraper rejects (the count is read last and is at least the buckets').
func (h *Histogram) Snapshot() (count uint64, sum float64, cumulative map[float64]uint64) {
	cumulative = make(map[float64]uint64, len(h.bounds))
	var acc uint64
	for i, b := range h.bounds {
		acc += h.counts[i].Load()
		cumulative[b] = acc
	}
	acc += h.counts[len(h.bounds)].Load()
	sum = math.Float64frombits(h.sumBits.Load())
	return max(acc, h.count.Load()), sum, cumulative
}
