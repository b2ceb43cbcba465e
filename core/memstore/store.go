package memstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/presence-service/presence/core"
)

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("memstore: closed")

// Store is an in-memory core.Registry, core.NotificationQueues and
// core.StatusQueue. Every method is safe for concurrent use; one mutex
// makes each call atomic, as a transaction would. Values handed in and
// out are copies: a caller never shares memory with the store.
type Store struct {
	// Now is the clock for the times the store sets itself (created_at
	// of apps, users and grants). Default: time.Now.
	Now func() time.Time

	mu       sync.Mutex // guards every field below
	closed   bool
	apps     map[core.AppID]core.App
	users    map[string]core.User
	grants   map[string]core.Grant // by PUID
	byTriple map[grantKey]string   // (user, app, userstring) → PUID
	queues   map[string][]item     // by PUID, oldest first
	ids      map[string]string     // notification id → PUID
	waiting  map[core.AppID]map[string]core.StatusUpdate
	seq      int64 // of the last notification stored: its order
}

type grantKey struct {
	user       string
	app        core.AppID
	userString string
}

// item is one queued notification and its place in the store's order.
type item struct {
	seq int64
	n   core.Notification
}

var (
	_ core.Registry           = (*Store)(nil)
	_ core.NotificationQueues = (*Store)(nil)
	_ core.StatusQueue        = (*Store)(nil)
)

// New returns an empty store.
func New() *Store {
	return &Store{
		apps:     make(map[core.AppID]core.App),
		users:    make(map[string]core.User),
		grants:   make(map[string]core.Grant),
		byTriple: make(map[grantKey]string),
		queues:   make(map[string][]item),
		ids:      make(map[string]string),
		waiting:  make(map[core.AppID]map[string]core.StatusUpdate),
	}
}

// Deps is the store as every service of a router but the bus.
func (s *Store) Deps() core.Deps {
	return core.Deps{Registry: s, Notifications: s, Statuses: s}
}

// Close makes every later call fail with ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// Ping implements core.Registry: nil until Close.
func (s *Store) Ping(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checkLocked()
}

func (s *Store) checkLocked() error {
	if s.closed {
		return ErrClosed
	}
	return nil
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return stamp(s.Now())
	}
	return stamp(time.Now())
}

// stamp is a time as a database gives it back: UTC, no monotonic reading.
func stamp(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Round(0).UTC()
}

func notFound(format string, args ...any) error {
	return fmt.Errorf("memstore: %s: %w", fmt.Sprintf(format, args...), core.ErrNotFound)
}

// CreateApp implements core.Registry. A zero a.ID is the highest id plus
// one; a given one is kept, and core.ErrConflict says it is taken. A zero
// CreatedAt is now; an empty State is unverified.
func (s *Store) CreateApp(_ context.Context, a *core.App) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return err
	}
	c := cloneApp(*a)
	if c.ID == 0 {
		for id := range s.apps {
			c.ID = max(c.ID, id)
		}
		c.ID++
	} else if _, taken := s.apps[c.ID]; taken {
		return fmt.Errorf("memstore: create app %d: %w", c.ID, core.ErrConflict)
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.now()
	}
	if c.State == "" {
		c.State = core.AppUnverified
	}
	c.CreatedAt, c.VerifiedAt, c.ActivatedAt = stamp(c.CreatedAt), stamp(c.VerifiedAt), stamp(c.ActivatedAt)
	s.apps[c.ID] = c
	a.ID, a.CreatedAt, a.State = c.ID, c.CreatedAt, c.State
	return nil
}

// App implements core.Registry.
func (s *Store) App(_ context.Context, id core.AppID) (*core.App, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return nil, err
	}
	a, ok := s.apps[id]
	if !ok {
		return nil, notFound("app %d", id)
	}
	c := cloneApp(a)
	return &c, nil
}

// Apps implements core.Registry.
func (s *Store) Apps(_ context.Context, ownerEmail string) ([]*core.App, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return nil, err
	}
	out := []*core.App{}
	for _, a := range s.apps {
		if ownerEmail == "" || a.OwnerEmail == ownerEmail {
			c := cloneApp(a)
			out = append(out, &c)
		}
	}
	sortBy(out, func(a *core.App) int64 { return int64(a.ID) })
	return out, nil
}

// UpdateApp implements core.Registry.
func (s *Store) UpdateApp(_ context.Context, a *core.App) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return err
	}
	old, ok := s.apps[a.ID]
	if !ok {
		return notFound("app %d", a.ID)
	}
	c := cloneApp(*a)
	c.CreatedAt = old.CreatedAt
	c.VerifiedAt, c.ActivatedAt = stamp(c.VerifiedAt), stamp(c.ActivatedAt)
	s.apps[a.ID] = c
	return nil
}

func cloneApp(a core.App) core.App {
	a.KeyHash = cloneBytes(a.KeyHash)
	a.KeySealed = cloneBytes(a.KeySealed)
	return a
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// UpsertUser implements core.Registry.
func (s *Store) UpsertUser(_ context.Context, u core.User) error {
	if u.ID == "" {
		return core.Errorf(core.ErrnoInvalidField, "user id: missing")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return err
	}
	if old, ok := s.users[u.ID]; ok {
		if u.Email != "" {
			old.Email = u.Email
		}
		s.users[u.ID] = old
		return nil
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = s.now()
	}
	u.CreatedAt = stamp(u.CreatedAt)
	s.users[u.ID] = u
	return nil
}

// User implements core.Registry.
func (s *Store) User(_ context.Context, id string) (*core.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return nil, err
	}
	u, ok := s.users[id]
	if !ok {
		return nil, notFound("user %q", id)
	}
	return &u, nil
}

// Grant implements core.Registry. The user and the app must exist (else
// core.ErrNotFound); a newPUID that is another grant's is core.ErrConflict.
func (s *Store) Grant(_ context.Context, userID string, app core.AppID, userString string, newPUID string) (*core.Grant, bool, error) {
	if newPUID == "" {
		return nil, false, core.Errorf(core.ErrnoInvalidField, "puid: missing")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return nil, false, err
	}
	key := grantKey{userID, app, userString}
	if puid, ok := s.byTriple[key]; ok {
		g := s.grants[puid]
		return &g, false, nil
	}
	if _, ok := s.users[userID]; !ok {
		return nil, false, notFound("grant: user %q", userID)
	}
	if _, ok := s.apps[app]; !ok {
		return nil, false, notFound("grant: app %d", app)
	}
	if _, taken := s.grants[newPUID]; taken {
		return nil, false, fmt.Errorf("memstore: grant: PUID taken: %w", core.ErrConflict)
	}
	g := core.Grant{PUID: newPUID, UserID: userID, AppID: app, UserString: userString, CreatedAt: s.now()}
	s.grants[newPUID] = g
	s.byTriple[key] = newPUID
	return &g, true, nil
}

// GrantByPUID implements core.Registry.
func (s *Store) GrantByPUID(_ context.Context, puid string) (*core.Grant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return nil, err
	}
	g, ok := s.grants[puid]
	if !ok {
		return nil, notFound("grant")
	}
	return &g, nil
}

// UserGrants implements core.Registry.
func (s *Store) UserGrants(_ context.Context, userID string) ([]*core.Grant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return nil, err
	}
	out := []*core.Grant{}
	for _, g := range s.grants {
		if g.UserID == userID {
			out = append(out, &g)
		}
	}
	sortGrants(out)
	return out, nil
}

// RevokeGrant implements core.Registry: the grant, its waiting status and
// its queued notifications go together.
func (s *Store) RevokeGrant(_ context.Context, puid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return err
	}
	g, ok := s.grants[puid]
	if !ok {
		return notFound("revoke grant")
	}
	delete(s.grants, puid)
	delete(s.byTriple, grantKey{g.UserID, g.AppID, g.UserString})
	for _, it := range s.queues[puid] {
		delete(s.ids, it.n.ID)
	}
	delete(s.queues, puid)
	delete(s.waiting[g.AppID], puid)
	return nil
}
