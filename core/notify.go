package core

import (
	"context"
	"runtime/debug"
	"time"
)

// ItemError says which item of a batch was refused; the whole batch was.
type ItemError struct {
	Index int
	Err   *Error
}

func (e *ItemError) Error() string { return e.Err.Error() }
func (e *ItemError) Unwrap() error { return e.Err }

// Notify validates a batch of live notifications from app, stores it in
// one atomic, durable step (or not at all), and only then pushes each item
// to the connected devices of its user. It returns each item's queue
// size. It is the one call every edge makes (POST, app channel, XMPP).
// If ctx ends first, the batch may be stored or not, as with any answer
// that is lost.
func (r *Router) Notify(ctx context.Context, app AppID, items []NotificationInput) ([]Notification, []int, error) {
	if len(items) == 0 || len(items) > MaxNotificationBatch {
		return nil, nil, Errorf(ErrnoInvalidField, "want 1 to %d items, got %d", MaxNotificationBatch, len(items))
	}
	for i, it := range items {
		if err := CheckNotification(it); err != nil {
			e := err.(*Error)
			return nil, nil, &ItemError{Index: i, Err: &Error{Errno: e.Errno, Reason: e.Reason}}
		}
	}
	start := time.Now()
	stored, sizes, err := r.queues.AddNotifications(ctx, app, items, r.opts.Now(), r.opts.NotificationDefaultTTL, r.opts.NotificationQueueSize)
	r.Metrics.CommitSeconds.ObserveSince(start)
	if err != nil {
		return nil, nil, err
	}
	r.Metrics.NotificationsStored.Add(int64(len(stored)))
	r.bus.PublishNotifications(stored) // every node, this one included, pushes to the devices it holds
	return stored, sizes, nil
}

// deliverNotificationsSafely is deliverNotifications, with a panic in a
// push logged instead of ending the process: the batch is durable by
// then, so its caller still hears that it was stored, and a device that
// missed the push gets the notification from its pending queue.
func (r *Router) deliverNotificationsSafely(stored []Notification) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("panic after storing notifications", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	r.deliverNotifications(stored)
}

// deliverNotifications marks the users of a stored batch as having
// notifications waiting, and pushes them to the users' devices here.
func (r *Router) deliverNotifications(stored []Notification) {
	marked := ""
	for _, n := range stored {
		if n.UserID != marked { // batches are mostly one user's, or each a different one
			r.pending.mark(n.UserID)
			marked = n.UserID
		}
	}
	r.pushNotifications(stored)
}

// pushNotifications hands stored notifications to the live devices of
// their users. Delivery is at least once: the device acks by id.
func (r *Router) pushNotifications(ns []Notification) {
	if oneUser(ns) { // the usual batch, and every single item: no grouping
		r.pushToUser(ns[0].UserID, ns)
		return
	}
	byUser := make(map[string][]Notification)
	for _, n := range ns {
		byUser[n.UserID] = append(byUser[n.UserID], n)
	}
	for userID, list := range byUser {
		r.pushToUser(userID, list)
	}
}

// oneUser reports whether every item of ns (at least one) is the same
// user's.
func oneUser(ns []Notification) bool {
	for _, n := range ns {
		if n.UserID != ns[0].UserID {
			return false
		}
	}
	return len(ns) > 0
}
