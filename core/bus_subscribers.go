package core

import (
	"slices"
	"sync"
	"sync/atomic"
)

// BusSubscribers is the list of a Bus's subscribers, for the Bus
// implementations (LocalBus, natsbus) to share. Delivery reads it with
// one atomic load and no lock, so that a bus's hot path never waits on a
// Subscribe; Subscribe and its cancel copy the list. The zero value is
// an empty list.
type BusSubscribers struct {
	mu   sync.Mutex // guards: writes to list
	list atomic.Pointer[[]BusSubscriber]
}

// Subscribe adds node; the returned func removes it (once, however often
// it is called).
func (s *BusSubscribers) Subscribe(node BusSubscriber) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := append(slices.Clone(s.All()), node)
	s.list.Store(&next)
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			cur := s.All()
			if i := slices.Index(cur, node); i >= 0 {
				next := slices.Delete(slices.Clone(cur), i, i+1)
				s.list.Store(&next)
			}
		})
	}
}

// All is the subscribers now; the caller must not change the slice.
func (s *BusSubscribers) All() []BusSubscriber {
	if p := s.list.Load(); p != nil {
		return *p
	}
	return nil
}
