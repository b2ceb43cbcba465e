package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-service/presence/core"
)

// Defaults, as core/sqlite's.
const (
	DefaultTTL       = 60 * time.Second
	DefaultQueueSize = 100
	DefaultReplicas  = 3
)

// Grants finds the grant of a PUID: every queued item's PUID must be a
// grant of its app (core.Registry does it; so may a cache in front of it).
type Grants interface {
	GrantByPUID(ctx context.Context, puid string) (*core.Grant, error)
}

// NotificationConfig sets up the notification stream.
type NotificationConfig struct {
	Replicas  int // cluster.replicas; 0: DefaultReplicas
	QueueSize int // notifications.queue_size, the cap per PUID; 0: DefaultQueueSize
	// Waiting, if set, hears why the stream cannot be created yet while
	// JetStream is still forming (at most every few seconds); Open retries
	// until ctx ends.
	Waiting func(error)
}

// Notifications is core.NotificationQueues on a JetStream stream. It is
// safe for concurrent use, by any number of nodes at once.
type Notifications struct {
	js     jetstream.JetStream
	grants Grants

	mu        sync.Mutex // guards: queueSize, and changing the stream's cap
	queueSize int        // the stream's max_msgs_per_subject

	// streamSubjects is how many queues the stream held at the last size
	// read (queuesizes.go), which bounds what a read of an app's queues
	// can return; math.MaxInt64 until a read has said.
	streamSubjects atomic.Int64

	sizeReads sizeReads // one size read for the one-queue batches waiting
}

var _ core.NotificationQueues = (*Notifications)(nil)

// OpenNotifications creates the notification stream, or updates its
// settings to cfg's (a changed queue_size or replica count applies to
// the stream, for every node).
func OpenNotifications(ctx context.Context, js jetstream.JetStream, grants Grants, cfg NotificationConfig) (*Notifications, error) {
	if cfg.Replicas <= 0 {
		cfg.Replicas = DefaultReplicas
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	err := createStream(ctx, js, jetstream.StreamConfig{
		Name:        NotificationStream,
		Description: "Presence live notifications: one subject, one queue, per PUID",
		Subjects:    []string{notificationRoot + ".>"},
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		// The cap per queue, enforced by the server in the same step as
		// the write that exceeds it (PROTOCOL §4: the oldest is dropped).
		MaxMsgsPerSubject: int64(cfg.QueueSize),
		// Each message's id (its nonce) is remembered this long, for a
		// second try of its batch (storeBatch).
		Duplicates:         duplicateWindow,
		Discard:            jetstream.DiscardOld,
		AllowDirect:        true, // batch reads of a user's queues
		AllowAtomicPublish: true, // a POST's batch stored whole or not at all
	}, cfg.Waiting)
	if err != nil {
		return nil, fmt.Errorf("jetstream: notification stream: %w", err)
	}
	n := &Notifications{js: js, grants: grants, queueSize: cfg.QueueSize}
	n.streamSubjects.Store(math.MaxInt64)
	return n, nil
}

// stored is a notification as the stream keeps it; the stream adds the
// sequence, from which the id is made.
type stored struct {
	Nonce     string     `json:"nonce"` // the random part of the id
	App       core.AppID `json:"app"`
	PUID      string     `json:"puid"`
	User      string     `json:"user"`
	Message   string     `json:"message"`
	Action    string     `json:"action"`
	CreatedAt int64      `json:"created_at"` // Unix nanoseconds
	ExpiresAt int64      `json:"expires_at"`
}

func (s *stored) notification(seq uint64) core.Notification {
	return core.Notification{
		ID:        notificationID(seq, s.Nonce),
		AppID:     s.App,
		PUID:      s.PUID,
		UserID:    s.User,
		Message:   s.Message,
		Action:    s.Action,
		CreatedAt: time.Unix(0, s.CreatedAt).UTC(),
		ExpiresAt: time.Unix(0, s.ExpiresAt).UTC(),
	}
}

// AddNotifications stores the batch with one atomic batch publish: it
// returns once the stream's leader has stored every item and a majority
// of its replicas have them (an R3 stream: two servers), or with an
// error. A try whose answer is lost with the stream's leader is sent
// again after publishAttempt, and refused as a duplicate if the first
// was stored (storeBatch): the caller hears OK with the ids of the one
// copy stored. An error means nothing was stored, except when no try was
// answered within requestTimeout (JetStream unreachable, or answering
// slower than that): then the whole batch may be stored, and the app,
// told of an error, may send it again (at least once). Each PUID must be a grant of app (else an
// *core.ItemError with errno 44 naming the first bad item, and nothing is
// stored). queueSize is the cap of every queue: the stream's
// max_msgs_per_subject, set at OpenNotifications; another value (0 keeps
// the stream's) changes the stream's cap first, for every queue, as a
// changed notifications.queue_size does.
//
// The queue sizes it returns are read from the stream's leader right
// after the commit, in one request for the batch (queuesizes.go), so on a
// busy queue they may count a concurrent batch's items, or miss items a
// device acked meanwhile, too.
func (n *Notifications) AddNotifications(ctx context.Context, app core.AppID, items []core.NotificationInput, now time.Time, defaultTTL time.Duration, queueSize int) ([]core.Notification, []int, error) {
	if len(items) == 0 {
		return nil, nil, core.Errorf(core.ErrnoInvalidField, "batch: no items")
	}
	if len(items) > core.MaxNotificationBatch {
		return nil, nil, core.Errorf(core.ErrnoInvalidField, "batch: %d items, at most %d", len(items), core.MaxNotificationBatch)
	}
	capSize, err := n.setQueueSize(ctx, queueSize)
	if err != nil {
		return nil, nil, err
	}
	if defaultTTL <= 0 {
		defaultTTL = DefaultTTL
	}
	now = now.Round(0).UTC()
	users, err := n.usersOf(ctx, app, items)
	if err != nil {
		return nil, nil, err
	}

	ns := make([]core.Notification, len(items))
	msgs := make([]*nats.Msg, len(items))
	nonces := make([]string, len(items))
	for i, it := range items {
		if err := core.CheckNotification(it); err != nil {
			return nil, nil, itemError(i, core.ErrnoOf(err), core.ReasonOf(err))
		}
		ttl := it.TTL
		if ttl == 0 {
			ttl = defaultTTL
		}
		s := stored{Nonce: core.NewNotificationID(), App: app, PUID: it.PUID, User: users[i],
			Message: it.Message, Action: it.Action, CreatedAt: now.UnixNano(), ExpiresAt: now.Add(ttl).UnixNano()}
		data, err := json.Marshal(&s)
		if err != nil {
			return nil, nil, err
		}
		msgs[i] = &nats.Msg{Subject: notificationSubject(users[i], app, it.PUID), Data: data}
		if i == 0 {
			// The first item's nonce, random, is also its message's
			// JetStream id: a second try of the batch after a lost answer
			// is refused whole as a duplicate when the first was stored
			// (storeBatch). One id names the batch; an id on every item
			// would cost every server a duplicate-table entry per item.
			msgs[i].Header = nats.Header{jetstream.MsgIDHeader: []string{s.Nonce}}
		}
		ns[i] = s.notification(0)
		nonces[i] = s.Nonce
	}

	pctx, cancel := context.WithTimeout(ctx, requestTimeout)
	first, err := storeBatch(pctx, n.js, msgs)
	cancel()
	if err != nil {
		return nil, nil, fmt.Errorf("jetstream: add notifications of app %d: %w", app, err)
	}
	for i := range ns {
		ns[i].ID = notificationID(first+uint64(i), nonces[i])
	}
	sizes, err := n.queueSizes(ctx, app, users, msgs)
	if err != nil {
		// Stored durably: the caller must hear OK, so a size it could not
		// read is reported as what it knows, the batch's own items in
		// each queue, never as a failure.
		sizes = batchSizes(msgs, capSize)
	}
	return ns, sizes, nil
}

// setQueueSize makes size the stream's cap per queue when it is not (0
// keeps it) and returns the cap.
func (n *Notifications) setQueueSize(ctx context.Context, size int) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if size <= 0 || size == n.queueSize {
		return n.queueSize, nil
	}
	stream, err := n.js.Stream(ctx, NotificationStream)
	if err != nil {
		return 0, fmt.Errorf("jetstream: queue size %d: %w", size, err)
	}
	cfg := stream.CachedInfo().Config
	cfg.MaxMsgsPerSubject = int64(size)
	if _, err := n.js.UpdateStream(ctx, cfg); err != nil {
		return 0, fmt.Errorf("jetstream: queue size %d: %w", size, err)
	}
	// The update is answered once the cluster agreed on it, which may be
	// before the stream's leader applies it: a batch stored in between
	// would meet the old cap, and its queue's size exceed the new one.
	// The leader answers STREAM.INFO with the config it applies.
	for {
		info, err := stream.Info(ctx)
		if err != nil {
			return 0, fmt.Errorf("jetstream: queue size %d: %w", size, err)
		}
		if info.Config.MaxMsgsPerSubject == int64(size) {
			break
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("jetstream: queue size %d: not applied by the stream's leader: %w", size, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	n.queueSize = size
	return size, nil
}

// lookupParallel bounds the grant lookups one batch has in flight: a
// batch of 100 items for 100 PUIDs asks the registry 100 times, and one
// round trip to PostgreSQL after another would dominate the POST.
const lookupParallel = 8

// usersOf checks that each item's PUID is a grant of app and returns
// each item's user. A refusal names the first bad item, as SQLite's.
func (n *Notifications) usersOf(ctx context.Context, app core.AppID, items []core.NotificationInput) ([]string, error) {
	first := make(map[string]int, len(items)) // PUID -> its first item
	var puids []string
	for i, it := range items {
		if _, ok := first[it.PUID]; !ok {
			first[it.PUID] = i
			puids = append(puids, it.PUID)
		}
	}
	type answer struct {
		user string
		bad  bool // not a grant of app
		err  error
	}
	answers := make([]answer, len(puids))
	var wg sync.WaitGroup
	sem := make(chan struct{}, lookupParallel)
	for k, puid := range puids {
		if !validToken(puid) {
			answers[k].bad = true
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			g, err := n.grants.GrantByPUID(ctx, puid)
			switch {
			case errors.Is(err, core.ErrNotFound) || (err == nil && g.AppID != app):
				// A PUID of another app is as unknown as one that never was.
				answers[k].bad = true
			case err != nil:
				answers[k].err = err
			default:
				answers[k].user = g.UserID
			}
		})
	}
	wg.Wait()
	byPUID := make(map[string]string, len(puids))
	for k, puid := range puids { // in item order: the first bad item wins
		switch a := answers[k]; {
		case a.bad:
			return nil, itemError(first[puid], core.ErrnoUnknownUID, "unknown UID")
		case a.err != nil:
			return nil, fmt.Errorf("jetstream: add notifications of app %d: %w", app, a.err)
		default:
			byPUID[puid] = a.user
		}
	}
	users := make([]string, len(items))
	for i, it := range items {
		users[i] = byPUID[it.PUID]
	}
	return users, nil
}

// notificationID is the sequence in 16 hex digits, then the nonce.
func notificationID(seq uint64, nonce string) string {
	return fmt.Sprintf("%016x%s", seq, nonce)
}

// parseID splits an id into its sequence and nonce; ok is false for
// anything that Add did not make.
func parseID(id string) (seq uint64, nonce string, ok bool) {
	if len(id) <= 16 {
		return 0, "", false
	}
	// Exactly the 16 lower-case hex digits notificationID writes.
	for _, c := range []byte(id[:16]) {
		switch {
		case '0' <= c && c <= '9':
			seq = seq<<4 | uint64(c-'0')
		case 'a' <= c && c <= 'f':
			seq = seq<<4 | uint64(c-'a'+10)
		default:
			return 0, "", false
		}
	}
	if seq == 0 {
		return 0, "", false
	}
	return seq, id[16:], true
}

// itemError builds the ItemError of item i, as core/sqlite's.
func itemError(i int, errno core.Errno, reason string) *core.ItemError {
	return &core.ItemError{Index: i, Err: &core.Error{Errno: errno, Reason: fmt.Sprintf("item %d: %s", i, reason)}}
}
