package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/presence-service/presence/core"
)

// Defaults for the arguments of AddNotifications that a caller leaves at
// zero, as core/sqlite has them.
const (
	DefaultTTL       = 60 * time.Second
	DefaultQueueSize = 100
)

// AddNotifications implements core.NotificationQueues: the whole batch or
// nothing, each PUID's queue cut to its newest queueSize items.
func (s *Store) AddNotifications(_ context.Context, app core.AppID, items []core.NotificationInput, now time.Time, defaultTTL time.Duration, queueSize int) ([]core.Notification, []int, error) {
	if len(items) == 0 {
		return nil, nil, core.Errorf(core.ErrnoInvalidField, "batch: no items")
	}
	if len(items) > core.MaxNotificationBatch {
		return nil, nil, core.Errorf(core.ErrnoInvalidField, "batch: %d items, at most %d", len(items), core.MaxNotificationBatch)
	}
	if defaultTTL <= 0 {
		defaultTTL = DefaultTTL
	}
	if queueSize <= 0 {
		queueSize = DefaultQueueSize
	}
	now = stamp(now)
	for i, it := range items {
		if err := core.CheckNotification(it); err != nil {
			return nil, nil, itemError(i, core.ErrnoOf(err), core.ReasonOf(err))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return nil, nil, err
	}
	for i, it := range items {
		if g, ok := s.grants[it.PUID]; !ok || g.AppID != app {
			// A PUID of another app is as unknown as one that never was.
			return nil, nil, itemError(i, core.ErrnoUnknownUID, "unknown UID")
		}
	}
	ns := make([]core.Notification, len(items))
	for i, it := range items {
		ttl := it.TTL
		if ttl == 0 {
			ttl = defaultTTL
		}
		s.seq++
		ns[i] = core.Notification{
			ID:        core.NewNotificationID(),
			AppID:     app,
			PUID:      it.PUID,
			UserID:    s.grants[it.PUID].UserID,
			Message:   it.Message,
			Action:    it.Action,
			CreatedAt: now,
			ExpiresAt: now.Add(ttl),
		}
		s.queues[it.PUID] = append(s.queues[it.PUID], item{seq: s.seq, n: ns[i]})
		s.ids[ns[i].ID] = it.PUID
	}
	sizes := make([]int, len(items))
	for i, it := range items {
		q := s.queues[it.PUID]
		if over := len(q) - queueSize; over > 0 {
			for _, gone := range q[:over] {
				delete(s.ids, gone.n.ID)
			}
			q = slices.Delete(q, 0, over)
			s.queues[it.PUID] = q
		}
		sizes[i] = len(q)
	}
	return ns, sizes, nil
}

func itemError(i int, errno core.Errno, reason string) *core.ItemError {
	return &core.ItemError{Index: i, Err: &core.Error{Errno: errno, Reason: fmt.Sprintf("item %d: %s", i, reason)}}
}

// PendingNotifications implements core.NotificationQueues: all apps when
// apps is nil, none when it is empty but not nil.
func (s *Store) PendingNotifications(_ context.Context, userID string, apps []core.AppID) ([]core.Notification, error) {
	if apps != nil && len(apps) == 0 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return nil, err
	}
	var its []item
	for puid, q := range s.queues {
		g := s.grants[puid]
		if g.UserID != userID || (apps != nil && !slices.Contains(apps, g.AppID)) {
			continue
		}
		its = append(its, q...)
	}
	slices.SortFunc(its, func(a, b item) int { return cmp.Compare(a.seq, b.seq) })
	var ns []core.Notification
	for _, it := range its {
		ns = append(ns, it.n)
	}
	return ns, nil
}

// AckNotifications implements core.NotificationQueues.
func (s *Store) AckNotifications(_ context.Context, userID string, ids []string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return 0, err
	}
	deleted := 0
	for _, id := range ids {
		puid, ok := s.ids[id]
		if !ok || s.grants[puid].UserID != userID {
			continue
		}
		q := s.queues[puid]
		if i := slices.IndexFunc(q, func(it item) bool { return it.n.ID == id }); i >= 0 {
			s.queues[puid] = slices.Delete(q, i, i+1)
			if len(s.queues[puid]) == 0 {
				delete(s.queues, puid)
			}
			delete(s.ids, id)
			deleted++
		}
	}
	return deleted, nil
}

// UsersWithNotifications implements core.NotificationQueues.
func (s *Store) UsersWithNotifications(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return nil, err
	}
	seen := make(map[string]bool)
	var users []string
	for puid, q := range s.queues {
		if u := s.grants[puid].UserID; len(q) > 0 && !seen[u] {
			seen[u] = true
			users = append(users, u)
		}
	}
	slices.Sort(users)
	return users, nil
}

// PurgeNotifications implements core.NotificationQueues.
func (s *Store) PurgeNotifications(_ context.Context, createdBefore time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return 0, err
	}
	deleted := 0
	for puid, q := range s.queues {
		kept := q[:0]
		for _, it := range q {
			if it.n.CreatedAt.Before(createdBefore) {
				delete(s.ids, it.n.ID)
				deleted++
			} else {
				kept = append(kept, it)
			}
		}
		if len(kept) == 0 {
			delete(s.queues, puid)
		} else {
			s.queues[puid] = kept
		}
	}
	return deleted, nil
}

// DeletePUIDNotifications implements core.NotificationQueues. RevokeGrant
// has emptied a revoked PUID's queue already; this empties any queue.
func (s *Store) DeletePUIDNotifications(_ context.Context, puid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return err
	}
	for _, it := range s.queues[puid] {
		delete(s.ids, it.n.ID)
	}
	delete(s.queues, puid)
	return nil
}
