package memstore

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/presence-service/presence/core"
)

// SaveWaiting implements core.StatusQueue: per (app, PUID) the newest
// update is kept; PUIDs that are not grants of app are skipped.
func (s *Store) SaveWaiting(_ context.Context, app core.AppID, updates []core.StatusUpdate) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return err
	}
	for _, u := range updates {
		if g, ok := s.grants[u.PUID]; !ok || g.AppID != app {
			continue
		}
		w := s.waiting[app]
		if w == nil {
			w = make(map[string]core.StatusUpdate)
			s.waiting[app] = w
		}
		u.At = stamp(u.At)
		if old, ok := w[u.PUID]; !ok || !u.At.Before(old.At) {
			w[u.PUID] = u
		}
	}
	return nil
}

// TakeWaiting implements core.StatusQueue.
func (s *Store) TakeWaiting(_ context.Context, app core.AppID, since time.Time) ([]core.StatusUpdate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return nil, err
	}
	out := waitingSince(s.waiting[app], since)
	delete(s.waiting, app)
	return out, nil
}

// AllWaiting implements core.StatusQueue.
func (s *Store) AllWaiting(_ context.Context, since time.Time) (map[core.AppID][]core.StatusUpdate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return nil, err
	}
	all := make(map[core.AppID][]core.StatusUpdate)
	for app, w := range s.waiting {
		if us := waitingSince(w, since); len(us) > 0 {
			all[app] = us
		}
	}
	return all, nil
}

// waitingSince is the updates of w at or after since, by time, then PUID.
func waitingSince(w map[string]core.StatusUpdate, since time.Time) []core.StatusUpdate {
	out := make([]core.StatusUpdate, 0, len(w))
	for _, u := range w {
		if !u.At.Before(since) {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b core.StatusUpdate) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return cmp.Compare(a.PUID, b.PUID)
	})
	return out
}

// sortBy sorts s by key.
func sortBy[T any](s []T, key func(T) int64) {
	slices.SortFunc(s, func(a, b T) int { return cmp.Compare(key(a), key(b)) })
}

// sortGrants orders grants by app, then creation time, then PUID.
func sortGrants(gs []*core.Grant) {
	slices.SortFunc(gs, func(a, b *core.Grant) int {
		if c := cmp.Compare(a.AppID, b.AppID); c != 0 {
			return c
		}
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.PUID, b.PUID)
	})
}
