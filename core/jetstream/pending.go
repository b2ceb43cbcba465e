package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-service/presence/core"
)

// ackParallel bounds the deletes one AckNotifications has in flight.
const ackParallel = 8

// PendingNotifications lists the user's queued notifications for apps
// (every app when nil), oldest first: by creation time, then by stream
// sequence (the order they were stored in). The list is read from any
// replica, then each item in it is confirmed on the stream's leader
// (stillQueued), so an item whose ack was answered is never listed.
func (n *Notifications) PendingNotifications(ctx context.Context, userID string, apps []core.AppID) ([]core.Notification, error) {
	filters := []string{userNotifications(userID)}
	if apps != nil {
		filters = filters[:0]
		for _, a := range apps {
			filters = append(filters, userAppNotifications(userID, a))
		}
	}
	var read []core.Notification
	var seqs []uint64
	for _, f := range filters {
		msgs, err := readAll(ctx, n.js, NotificationStream, f)
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			s, err := decodeStored(m.Subject, m.Data)
			if err != nil {
				// Not a notification this service stored: it is no item
				// of the user's, and must not hide theirs.
				continue
			}
			read = append(read, s.notification(m.Sequence))
			seqs = append(seqs, m.Sequence)
		}
	}
	held, err := stillQueued(ctx, n.js, seqs)
	if err != nil {
		return nil, err
	}
	var out []core.Notification
	for i, item := range read {
		if held[i] {
			out = append(out, item)
		}
	}
	// Ids begin with the sequence in fixed-width hex: comparing them
	// compares the sequences.
	slices.SortStableFunc(out, func(a, b core.Notification) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// stillQueued says, for each sequence, whether the stream's leader still
// holds that message, asking it ackParallel at a time. A read served by
// a replica lags the leader by the replication delay, longer on a busy
// cluster: an item whose ack was answered a moment ago (the leader had
// deleted it) would be pushed again, on this node or on the one a device
// reconnects to, and an acked notification must never come again.
func stillQueued(ctx context.Context, js jetstream.JetStream, seqs []uint64) ([]bool, error) {
	held := make([]bool, len(seqs))
	var (
		wg    sync.WaitGroup
		sem   = make(chan struct{}, ackParallel)
		mu    sync.Mutex // guards: first
		first error
	)
	for i, seq := range seqs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, found, err := leaderGet(ctx, js, NotificationStream, seq)
			held[i] = found // each goroutine writes its own element
			if err != nil {
				mu.Lock()
				defer mu.Unlock()
				if first == nil {
					first = err
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return nil, fmt.Errorf("jetstream: pending: confirm on the leader: %w", first)
	}
	return held, nil
}

// AckNotifications deletes the user's notifications with these ids and
// returns how many it deleted. An id that is malformed, already gone, or
// another user's (the random part or the user does not match) is
// ignored. Each delete is durable (on the stream's replicas) on return.
func (n *Notifications) AckNotifications(ctx context.Context, userID string, ids []string) (int, error) {
	var (
		wg      sync.WaitGroup
		sem     = make(chan struct{}, ackParallel)
		mu      sync.Mutex // guards: deleted, first
		deleted int
		first   error
	)
	for _, id := range ids {
		seq, nonce, ok := parseID(id)
		if !ok {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ok, err := ackOne(ctx, n.js, userID, seq, nonce)
			mu.Lock()
			defer mu.Unlock()
			if ok {
				deleted++
			}
			if err != nil && first == nil {
				first = err
			}
		})
	}
	wg.Wait()
	if first != nil {
		return deleted, fmt.Errorf("jetstream: ack: %w", first)
	}
	return deleted, nil
}

// ackAttempt bounds one try of an ack. Both of its steps are answered
// by the stream's leader only, and a try sent to a leader that died has
// no answer coming: it is tried again after ackAttempt (a new leader is
// elected well within it) rather than held for requestTimeout, since a
// device's later requests wait for its ack's answer. Both steps are safe
// to repeat: a delete whose answer was lost finds the message gone, as an
// ack by another device does.
const ackAttempt = time.Second

// ackOne deletes message seq when it is the user's with this nonce,
// trying again each ackAttempt until requestTimeout.
func ackOne(ctx context.Context, js jetstream.JetStream, userID string, seq uint64, nonce string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	for {
		actx, acancel := context.WithTimeout(ctx, ackAttempt)
		ok, err := ackOnce(actx, js, userID, seq, nonce)
		acancel()
		if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return ok, err
		}
	}
}

// ackOnce is one try of ackOne. The message is read from the stream's
// leader, not from any replica: an ack may follow its add within
// milliseconds, and a lagging replica's "no such message" would drop the
// ack.
func ackOnce(ctx context.Context, js jetstream.JetStream, userID string, seq uint64, nonce string) (bool, error) {
	data, found, err := leaderGet(ctx, js, NotificationStream, seq)
	if err != nil || !found {
		return false, err
	}
	var s stored
	if json.Unmarshal(data, &s) != nil || s.User != userID || s.Nonce != nonce {
		return false, nil
	}
	gone, err := deleteMsg(ctx, js, NotificationStream, seq)
	if gone {
		return false, nil // acked meanwhile by another device
	}
	return err == nil, err
}

// leaderGet reads message seq through the stream's leader (the
// STREAM.MSG.GET API, which only the leader answers).
func leaderGet(ctx context.Context, js jetstream.JetStream, stream string, seq uint64) (data []byte, found bool, err error) {
	req, _ := json.Marshal(map[string]uint64{"seq": seq})
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+stream, req)
	if err != nil {
		return nil, false, err
	}
	var r struct {
		Error   *jetstream.APIError `json:"error"`
		Message struct {
			Data []byte `json:"data"` // base64 in JSON, decoded by encoding/json
		} `json:"message"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return nil, false, err
	}
	if r.Error != nil {
		if r.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound {
			return nil, false, nil
		}
		return nil, false, r.Error
	}
	return r.Message.Data, true, nil
}

// UsersWithNotifications lists the users with at least one queued
// notification, read from the stream's subjects (each names its user).
func (n *Notifications) UsersWithNotifications(ctx context.Context) ([]string, error) {
	stream, err := n.js.Stream(ctx, NotificationStream)
	if err != nil {
		return nil, fmt.Errorf("jetstream: users with notifications: %w", err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(notificationRoot+".>"))
	if err != nil {
		return nil, fmt.Errorf("jetstream: users with notifications: %w", err)
	}
	seen := make(map[string]bool)
	var users []string
	for subj := range info.State.Subjects {
		u, err := userOfSubject(subj)
		if err != nil {
			// Not a queue this service made: any client of the account
			// can publish under presence.n.>, and one such subject must
			// not hide every user's queue (a node could not start).
			continue
		}
		if !seen[u] {
			seen[u] = true
			users = append(users, u)
		}
	}
	slices.Sort(users)
	return users, nil
}

// PurgeNotifications deletes the notifications created before the time
// and returns how many. It reads the whole stream (from any replica) and
// deletes what is that old, a whole leading run with one purge and the
// rest one by one: JetStream cannot select by a field of the message,
// and the stream's own timestamps are the time of storing, not the
// created_at the contract speaks of. The router runs it hourly.
func (n *Notifications) PurgeNotifications(ctx context.Context, createdBefore time.Time) (int, error) {
	cut := createdBefore.UnixNano()
	msgs, err := readAll(ctx, n.js, NotificationStream, notificationRoot+".>")
	if err != nil {
		return 0, fmt.Errorf("jetstream: purge: %w", err)
	}
	var old []uint64 // in stream order
	run := 0         // how many of msgs, from the first, are old
	for i, m := range msgs {
		var s stored
		if json.Unmarshal(m.Data, &s) != nil || s.CreatedAt >= cut {
			continue
		}
		if run == i {
			run++
		}
		old = append(old, m.Sequence)
	}
	purged := 0
	if run > 0 {
		n, err := purge(ctx, n.js, NotificationStream, map[string]any{"seq": msgs[run-1].Sequence + 1})
		if err != nil {
			return 0, err
		}
		purged = n
	}
	if len(old) == run {
		return purged, nil
	}
	for _, seq := range old[run:] {
		gone, err := deleteMsg(ctx, n.js, NotificationStream, seq)
		if gone {
			continue // acked meanwhile
		}
		if err != nil {
			return purged, fmt.Errorf("jetstream: purge: %w", err)
		}
		purged++
	}
	return purged, nil
}

// DeletePUIDNotifications empties a PUID's queue (its grant was revoked;
// the router calls it after the registry's RevokeGrant). It is
// idempotent.
func (n *Notifications) DeletePUIDNotifications(ctx context.Context, puid string) error {
	if !validToken(puid) {
		return nil
	}
	_, err := purge(ctx, n.js, NotificationStream, map[string]any{"filter": puidNotifications(puid)})
	return err
}

// purge sends a purge request and returns how many messages went.
func purge(ctx context.Context, js jetstream.JetStream, stream string, req map[string]any) (int, error) {
	body, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.PURGE."+stream, body)
	if err != nil {
		return 0, fmt.Errorf("jetstream: purge %s: %w", stream, err)
	}
	var r struct {
		Error  *jetstream.APIError `json:"error"`
		Purged int                 `json:"purged"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return 0, fmt.Errorf("jetstream: purge %s: %w", stream, err)
	}
	if r.Error != nil {
		return 0, fmt.Errorf("jetstream: purge %s: %w", stream, r.Error)
	}
	return r.Purged, nil
}

// deleteMsg deletes message seq of the stream, as Stream.DeleteMsg does
// (its data is not erased). gone says it was not there: acked or purged
// meanwhile, by another device or node. It asks the API itself because
// nats.go's DeleteMsg turns the server's error into text, which hides
// which error it was.
func deleteMsg(ctx context.Context, js jetstream.JetStream, stream string, seq uint64) (gone bool, err error) {
	req, _ := json.Marshal(map[string]any{"seq": seq, "no_erase": true})
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.MSG.DELETE."+stream, req)
	if err != nil {
		return false, err
	}
	var r struct {
		Error   *jetstream.APIError `json:"error"`
		Success bool                `json:"success"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return false, err
	}
	if r.Error != nil {
		if isNoMessage(r.Error) {
			return true, nil
		}
		return false, r.Error
	}
	if !r.Success {
		return false, fmt.Errorf("delete of message %d of %s: not successful", seq, stream)
	}
	return false, nil
}

// Delete errors of nats-server that mean "not there": the delete found
// the sequence already removed (deletes of one message by two nodes at
// once go through the stream's raft log in turn, and the second finds it
// gone), or the store has no message at that sequence.
const (
	errCodeSequenceNotFound = 10043 // JSSequenceNotFoundErrF
	errCodeMsgDeleteFailed  = 10057 // JSStreamMsgDeleteFailedF, with the store's error as description
	storeMsgNotFound        = "no message found"
)

// isNoMessage says whether a delete failed because the message is gone:
// acked meanwhile, by another device of the user, on this node or another.
func isNoMessage(api *jetstream.APIError) bool {
	switch api.ErrorCode {
	case jetstream.JSErrCodeMessageNotFound, errCodeSequenceNotFound:
		return true
	case errCodeMsgDeleteFailed:
		return api.Description == storeMsgNotFound
	}
	return false
}
