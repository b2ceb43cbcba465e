package core

import "sync"

// StatusOutbox is the bounded, coalescing queue between the router and one
// app channel. The router pushes without blocking; the channel's writer
// takes everything pending at once. Per PUID only the newest update waits
// (presence is state), so a slow app costs memory bounded by its user
// count, never by the update rate.
type StatusOutbox struct {
	mu      sync.Mutex // guards: order, pending, peak
	order   []string
	pending map[string]StatusUpdate
	peak    int // the most PUIDs ever pending at once: how large pending grew

	ready chan struct{} // holds a token while something is pending
}

// NewStatusOutbox returns an empty outbox.
func NewStatusOutbox() *StatusOutbox {
	return &StatusOutbox{pending: make(map[string]StatusUpdate), ready: make(chan struct{}, 1)}
}

// Push queues u, replacing any pending update of the same PUID in place.
func (o *StatusOutbox) Push(u StatusUpdate) {
	o.mu.Lock()
	if _, ok := o.pending[u.PUID]; !ok {
		o.order = append(o.order, u.PUID)
	}
	o.pending[u.PUID] = u
	o.mu.Unlock()
	select {
	case o.ready <- struct{}{}:
	default:
	}
}

// Ready has a value when Take has something to return.
func (o *StatusOutbox) Ready() <-chan struct{} { return o.ready }

// Take appends every pending update to dst, in first-pushed order, and
// empties the outbox.
func (o *StatusOutbox) Take(dst []StatusUpdate) []StatusUpdate {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, puid := range o.order {
		dst = append(dst, o.pending[puid])
	}
	// A map keeps the size of its largest burst, and clear walks all
	// of it: when few of that many are pending (one, as a writer that
	// keeps up usually finds), deleting each is cheaper.
	o.peak = max(o.peak, len(o.order))
	if len(o.order)*4 >= o.peak {
		clear(o.pending)
	} else {
		for _, puid := range o.order {
			delete(o.pending, puid)
		}
	}
	clear(o.order) // no PUID strings held past their turn
	o.order = o.order[:0]
	return dst
}

// Len is the number of PUIDs waiting.
func (o *StatusOutbox) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.order)
}
