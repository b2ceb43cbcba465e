package core

import (
	"sync"
	"sync/atomic"
)

// Metrics are the router's counters and gauges; ws serves them at
// /metrics in the Prometheus text format.
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

	mu     sync.Mutex // guards: errors
	errors map[Errno]int64
}

// NewMetrics returns zeroed metrics.
func NewMetrics() *Metrics { return &Metrics{errors: make(map[Errno]int64)} }

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
