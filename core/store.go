package core

import (
	"context"
	"time"
)

// Store is what the router and the edges need to keep durable: apps,
// users, grants, the waiting status queue and notification queues.
// core/sqlite implements it. Every method is safe for concurrent use.
// Methods return ErrNotFound (wrapped or bare) when a row is missing.
type Store interface {
	// Apps.
	CreateApp(ctx context.Context, a *App) error // assigns a.ID when zero
	App(ctx context.Context, id AppID) (*App, error)
	Apps(ctx context.Context, ownerEmail string) ([]*App, error) // "" lists all, by id
	UpdateApp(ctx context.Context, a *App) error                 // every column but id and created_at

	// Users and grants.
	UpsertUser(ctx context.Context, u User) error // inserts, or updates the email
	User(ctx context.Context, id string) (*User, error)
	// Grant returns the grant of (user, app, userstring), creating it with
	// newPUID when there is none; created says which.
	Grant(ctx context.Context, userID string, app AppID, userString string, newPUID string) (g *Grant, created bool, err error)
	GrantByPUID(ctx context.Context, puid string) (*Grant, error)
	UserGrants(ctx context.Context, userID string) ([]*Grant, error) // by app, then created_at
	// RevokeGrant deletes the grant, its waiting status and its notifications.
	RevokeGrant(ctx context.Context, puid string) error

	// The waiting status queue: per (app, PUID) only the newest update.
	// SaveWaiting upserts each update, skipping PUIDs no longer granted
	// to app (revoked while they waited).
	SaveWaiting(ctx context.Context, app AppID, updates []StatusUpdate) error
	// TakeWaiting returns and deletes the app's waiting updates that are at
	// or after since, oldest first; older ones are deleted too.
	TakeWaiting(ctx context.Context, app AppID, since time.Time) ([]StatusUpdate, error)
	// AllWaiting returns every waiting update at or after since, for the
	// router to load at start.
	AllWaiting(ctx context.Context, since time.Time) (map[AppID][]StatusUpdate, error)

	// Notifications. AddNotificationsThen stores the whole batch in one
	// transaction, or nothing: each item's PUID must be a grant of app
	// (else *Error errno 44 naming the index, and nothing is stored).
	// Each PUID's queue keeps at most queueSize items, the oldest dropped.
	// It returns at once and calls done exactly once with the stored
	// notifications (ids, times, user ids filled in) and each item's
	// queue size after the batch, only once the commit is durable, or
	// with the error. Concurrent calls share commits (group commit), and
	// done may run on a goroutine of the store's own that answers the
	// other callers too: done must not block, nor wait for a write.
	// Once the batch is queued, done is called whatever ctx does.
	AddNotificationsThen(ctx context.Context, app AppID, items []NotificationInput, now time.Time, defaultTTL time.Duration, queueSize int,
		done func([]Notification, []int, error))
	// PendingNotifications lists a user's queued notifications for the
	// given apps (all apps when nil), oldest first.
	PendingNotifications(ctx context.Context, userID string, apps []AppID) ([]Notification, error)
	// AckNotifications deletes the user's notifications with these ids and
	// returns how many it deleted; ids of other users are ignored.
	AckNotifications(ctx context.Context, userID string, ids []string) (int, error)
	// UsersWithNotifications lists the users with at least one queued
	// notification (the router loads it at start).
	UsersWithNotifications(ctx context.Context) ([]string, error)
	// PurgeNotifications deletes notifications created before the time.
	PurgeNotifications(ctx context.Context, createdBefore time.Time) (int, error)

	// Ping answers while the database does (GET /healthz).
	Ping(ctx context.Context) error
	Close() error
}
