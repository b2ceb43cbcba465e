package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/presence-service/presence/core"
)

// DefaultStatusTTL is apps.status_queue_ttl's default.
const DefaultStatusTTL = time.Hour

// StatusConfig sets up the status stream.
type StatusConfig struct {
	Replicas int           // cluster.replicas; 0: DefaultReplicas
	TTL      time.Duration // apps.status_queue_ttl; 0: DefaultStatusTTL
	Waiting  func(error)   // as NotificationConfig.Waiting
}

// Statuses is core.StatusQueue on a JetStream stream: one subject per
// (app, PUID) holding only its newest update (one message per subject),
// each dropped by the server once older than the TTL.
type Statuses struct {
	js     jetstream.JetStream
	grants Grants
}

var _ core.SharedStatusQueue = (*Statuses)(nil)

// OpenStatuses creates the status stream, or updates its settings to
// cfg's.
func OpenStatuses(ctx context.Context, js jetstream.JetStream, grants Grants, cfg StatusConfig) (*Statuses, error) {
	if cfg.Replicas <= 0 {
		cfg.Replicas = DefaultReplicas
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultStatusTTL
	}
	err := createStream(ctx, js, jetstream.StreamConfig{
		Name:               StatusStream,
		Description:        "Presence status updates waiting for an app: the newest per PUID",
		Subjects:           []string{statusRoot + ".>"},
		Storage:            jetstream.FileStorage,
		Replicas:           cfg.Replicas,
		MaxMsgsPerSubject:  1, // presence is state: the newest replaces the one before
		MaxAge:             cfg.TTL,
		Discard:            jetstream.DiscardOld,
		AllowDirect:        true,
		AllowAtomicPublish: true, // SaveWaiting stores all of its updates or none
	}, cfg.Waiting)
	if err != nil {
		return nil, fmt.Errorf("jetstream: status stream: %w", err)
	}
	return &Statuses{js: js, grants: grants}, nil
}

// waiting is a status update as the stream keeps it.
type waiting struct {
	App     core.AppID  `json:"app"`
	PUID    string      `json:"puid"`
	Status  core.Status `json:"status"`
	Message string      `json:"message"`
	At      int64       `json:"at"` // Unix nanoseconds
}

func (w *waiting) update() core.StatusUpdate {
	return core.StatusUpdate{PUID: w.PUID, Status: w.Status, Message: w.Message, At: time.Unix(0, w.At).UTC()}
}

// SaveWaiting stores each update as its PUID's newest, in one atomic
// batch: all of them or none. It skips PUIDs that are no longer grants of
// app, and updates older than the one already waiting for their PUID.
func (s *Statuses) SaveWaiting(ctx context.Context, app core.AppID, updates []core.StatusUpdate) error {
	newest := make(map[string]core.StatusUpdate, len(updates))
	for _, u := range updates {
		if old, ok := newest[u.PUID]; !ok || !u.At.Before(old.At) {
			newest[u.PUID] = u
		}
	}
	var subjects []string
	for puid := range newest {
		ok, err := s.granted(ctx, app, puid)
		if err != nil {
			return fmt.Errorf("jetstream: save waiting statuses of app %d: %w", app, err)
		}
		if !ok {
			delete(newest, puid) // revoked while it waited
			continue
		}
		subjects = append(subjects, statusSubject(app, puid))
	}
	if len(subjects) == 0 {
		return nil
	}
	// What waits already, and is newer, stays.
	waitingAt, err := s.lastAt(ctx, subjects)
	if err != nil {
		return fmt.Errorf("jetstream: save waiting statuses of app %d: %w", app, err)
	}
	for puid, at := range waitingAt {
		if at > newest[puid].At.UnixNano() {
			delete(newest, puid)
		}
	}
	if len(newest) == 0 {
		return nil
	}
	msgs := make([]*nats.Msg, 0, len(newest))
	for _, u := range newest {
		data, err := json.Marshal(&waiting{App: app, PUID: u.PUID, Status: u.Status, Message: u.Message, At: u.At.UnixNano()})
		if err != nil {
			return err
		}
		msgs = append(msgs, &nats.Msg{Subject: statusSubject(app, u.PUID), Data: data, Header: nats.Header{}})
	}
	pctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if _, err := publishBatch(pctx, s.js, msgs); err != nil {
		return fmt.Errorf("jetstream: save waiting statuses of app %d: %w", app, err)
	}
	return nil
}

// lastAt returns the time of what waits under each subject that has a
// message, by PUID. Like publishBatch it asks again while the server the
// client is on knows of no stream yet (just created, or moving).
func (s *Statuses) lastAt(ctx context.Context, subjects []string) (map[string]int64, error) {
	return whileNoResponders(ctx, func() (map[string]int64, error) { return s.lastAtOnce(ctx, subjects) })
}

func (s *Statuses) lastAtOnce(ctx context.Context, subjects []string) (map[string]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	it, err := jetstreamext.GetLastMsgsFor(ctx, s.js, StatusStream, subjects)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64)
	for m, err := range it {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			break
		}
		if err != nil {
			return nil, err
		}
		var w waiting
		if json.Unmarshal(m.Data, &w) == nil {
			out[w.PUID] = w.At
		}
	}
	return out, nil
}

// putChunk bounds the messages of one atomic batch of PutWaiting: a
// server refuses larger batches.
const putChunk = 500

// PutWaiting implements core.SharedStatusQueue: each update replaces what
// waits for its PUID (one message per subject), in atomic batches of at
// most putChunk, in order. It reads nothing first and checks no grant:
// nodes write what they routed, and a take skips revoked PUIDs.
func (s *Statuses) PutWaiting(ctx context.Context, app core.AppID, updates []core.StatusUpdate) error {
	for chunk := range slices.Chunk(updates, putChunk) {
		msgs := make([]*nats.Msg, 0, len(chunk))
		for _, u := range chunk {
			if !validToken(u.PUID) {
				continue // not a subject token: never a PUID this service made
			}
			data, err := json.Marshal(&waiting{App: app, PUID: u.PUID, Status: u.Status, Message: u.Message, At: u.At.UnixNano()})
			if err != nil {
				return err
			}
			msgs = append(msgs, &nats.Msg{Subject: statusSubject(app, u.PUID), Data: data, Header: nats.Header{}})
		}
		if len(msgs) == 0 {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, requestTimeout)
		_, err := publishBatch(pctx, s.js, msgs)
		cancel()
		if err != nil {
			return fmt.Errorf("jetstream: put waiting statuses of app %d: %w", app, err)
		}
	}
	return nil
}

// DropWaiting implements core.SharedStatusQueue: it purges every subject
// of the app.
func (s *Statuses) DropWaiting(ctx context.Context, app core.AppID) error {
	_, err := purge(ctx, s.js, StatusStream, map[string]any{"filter": appStatuses(app)})
	return err
}

// granted says whether puid is still a grant of app.
func (s *Statuses) granted(ctx context.Context, app core.AppID, puid string) (bool, error) {
	if !validToken(puid) {
		return false, nil
	}
	g, err := s.grants.GrantByPUID(ctx, puid)
	if errors.Is(err, core.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return g.AppID == app, nil
}

// TakeWaiting returns the app's waiting updates at or after since, oldest
// first, of PUIDs still granted, and deletes every update of the app that
// it read (older ones and revoked ones too). An update saved while it runs is not read, and not deleted: it
// waits for the next take.
func (s *Statuses) TakeWaiting(ctx context.Context, app core.AppID, since time.Time) ([]core.StatusUpdate, error) {
	msgs, err := readAll(ctx, s.js, StatusStream, appStatuses(app))
	if err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	var last uint64
	for _, m := range msgs {
		last = max(last, m.Sequence)
	}
	// Grants are checked before the purge: a take that fails leaves the
	// queue whole for the next.
	out, err := s.stillGranted(ctx, updatesSince(msgs, since))
	if err != nil {
		return nil, err
	}
	if _, err := purge(ctx, s.js, StatusStream, map[string]any{"filter": appStatuses(app), "seq": last + 1}); err != nil {
		return nil, err
	}
	return out[app], nil
}

// AllWaiting returns every waiting update at or after since, by app,
// oldest first, deleting nothing.
func (s *Statuses) AllWaiting(ctx context.Context, since time.Time) (map[core.AppID][]core.StatusUpdate, error) {
	msgs, err := readAll(ctx, s.js, StatusStream, statusRoot+".>")
	if err != nil {
		return nil, err
	}
	return s.stillGranted(ctx, updatesSince(msgs, since))
}

// stillGranted drops the updates of PUIDs revoked since they were saved:
// a revocation empties the registry and the notification queue, and the
// status stream is left to forget them, by age or at the next take.
func (s *Statuses) stillGranted(ctx context.Context, byApp map[core.AppID][]core.StatusUpdate) (map[core.AppID][]core.StatusUpdate, error) {
	for app, us := range byApp {
		kept := us[:0]
		for _, u := range us {
			ok, err := s.granted(ctx, app, u.PUID)
			if err != nil {
				return nil, fmt.Errorf("jetstream: waiting statuses of app %d: %w", app, err)
			}
			if ok {
				kept = append(kept, u)
			}
		}
		if len(kept) == 0 {
			delete(byApp, app)
		} else {
			byApp[app] = kept
		}
	}
	return byApp, nil
}

// updatesSince decodes the messages, keeps those at or after since, and
// groups them by app, oldest first.
func updatesSince(msgs []*jetstream.RawStreamMsg, since time.Time) map[core.AppID][]core.StatusUpdate {
	out := make(map[core.AppID][]core.StatusUpdate)
	for _, m := range msgs {
		var w waiting
		if json.Unmarshal(m.Data, &w) != nil {
			continue
		}
		u := w.update()
		if u.At.Before(since) {
			continue
		}
		out[w.App] = append(out[w.App], u)
	}
	for _, us := range out {
		slices.SortStableFunc(us, func(a, b core.StatusUpdate) int { return a.At.Compare(b.At) })
	}
	return out
}
