package core

import "context"

// Notification flow (PROTOCOL §2, "Flow"): at most Options.
// NotificationWindow pushed notifications wait unacked on a session; the
// next follow as acks arrive. The queues stay in the store; a session only
// remembers which ids it was given, so a backlog of any size costs the
// device a window at a time and never overflows its connection's outbox.
//
// Invariants, under the user's lock:
//   - len(inflight) <= window: every push, live or from the backlog, goes
//     through pushWindowLocked, which sends at most the room left.
//   - backlog is set whenever the store may hold a notification of the
//     user that was not pushed to this session (a connect, or a push cut
//     short by the window); fill clears it only after a read that found
//     the rest fits, with no cut-short push since the read began
//     (skipped counts them).
type flowState struct {
	inflight map[string]struct{} // ids pushed and not acked by this session
	backlog  bool                // the store may hold notifications not pushed here
	skipped  uint64              // pushes cut short by the window, ever
}

// pushWindowLocked sends the session the notifications of ns that it was
// not already given, as many as its window has room for, and records the
// rest as backlog. It returns how many it sent. u.mu must be held.
func (r *Router) pushWindowLocked(s *Session, ns []Notification) int {
	if s.gone || s.replaced {
		return 0
	}
	f := &s.flow
	if f.inflight == nil {
		f.inflight = make(map[string]struct{})
	}
	room := r.opts.NotificationWindow - len(f.inflight)
	var send []Notification
	for i, n := range ns {
		if _, given := f.inflight[n.ID]; given {
			continue
		}
		if len(send) == room {
			f.backlog = true
			f.skipped++
			break
		}
		if send == nil {
			send = make([]Notification, 0, min(room, len(ns)-i))
		}
		send = append(send, n)
	}
	for _, n := range send {
		f.inflight[n.ID] = struct{}{}
	}
	if len(send) > 0 {
		s.sink.SendNotifications(send)
		r.Metrics.NotificationsPushed.Add(int64(len(send)))
	}
	return len(send)
}

// pushToUser hands list, all of it userID's, to each of the user's live
// devices, within each one's window.
func (r *Router) pushToUser(userID string, list []Notification) {
	u := r.lockUser(userID, false)
	if u == nil {
		return
	}
	defer u.mu.Unlock()
	for _, s := range u.sessions {
		r.pushWindowLocked(s, list)
	}
}

// PushPending pushes the first window of what waits for the session's
// user, oldest first; the rest follows as the device acks. The edge calls
// it once, right after the connect answer.
func (r *Router) PushPending(ctx context.Context, s *Session) error {
	user := s.identity.Subject
	gen, maybe := r.pending.lookup(user)
	if !maybe {
		return nil
	}
	s.user.mu.Lock()
	s.flow.backlog = true
	s.flow.skipped++
	s.user.mu.Unlock()
	none, err := r.fill(ctx, s)
	if err == nil && none {
		r.pending.clear(user, gen)
	}
	return err
}

// Ack removes notifications the device has shown (only the session's
// user's can be removed), frees their places in the session's window and
// pushes the next ones waiting. The next ones may reach the device before
// the ack's own answer.
func (r *Router) Ack(ctx context.Context, s *Session, ids []string) error {
	n, err := r.queues.AckNotifications(ctx, s.identity.Subject, ids)
	r.Metrics.NotificationsAcked.Add(int64(n))
	if err != nil {
		return err
	}
	u := s.user
	u.mu.Lock()
	for _, id := range ids {
		delete(s.flow.inflight, id) // acked here or not, the device has it
	}
	u.mu.Unlock()
	_, err = r.fill(ctx, s)
	return err
}

// fill pushes the session what waits in the store, until its window is
// full or nothing is left. The store is read without the user's lock;
// pushes cut short meanwhile make it read again. none reports that the
// last read found nothing queued for the user at all.
func (r *Router) fill(ctx context.Context, s *Session) (none bool, err error) {
	s.fillMu.Lock()
	defer s.fillMu.Unlock()
	u := s.user
	for {
		u.mu.Lock()
		f := &s.flow
		if s.gone || s.replaced || !f.backlog || len(f.inflight) >= r.opts.NotificationWindow {
			u.mu.Unlock()
			return false, nil
		}
		skipped := f.skipped
		u.mu.Unlock()

		ns, err := r.queues.PendingNotifications(ctx, s.identity.Subject, nil)
		if err != nil {
			return false, err
		}

		u.mu.Lock()
		before := f.skipped
		r.pushWindowLocked(s, ns)
		cut := f.skipped != before // this push filled the window: the rest waits for acks
		raced := before != skipped // a push was cut short after the read began
		f.backlog = cut || raced
		u.mu.Unlock()
		if !raced {
			return len(ns) == 0, nil
		}
	}
}
