package sqlreg

import (
	"database/sql"
	"time"

	"github.com/presence-service/presence/core"
)

// AppRow is a row of apps as sqlx scans it.
type AppRow struct {
	ID              int64         `db:"id"`
	Domain          string        `db:"domain"`
	Name            string        `db:"name"`
	Description     string        `db:"description"`
	OwnerEmail      string        `db:"owner_email"`
	State           string        `db:"state"`
	VerificationKey string        `db:"verification_key"`
	KeyHash         []byte        `db:"key_hash"`
	KeySealed       []byte        `db:"key_sealed"`
	CreatedAt       sql.NullInt64 `db:"created_at"`
	VerifiedAt      sql.NullInt64 `db:"verified_at"`
	ActivatedAt     sql.NullInt64 `db:"activated_at"`
}

// AppColumns are AppRow's columns, in a SELECT's order.
const AppColumns = `id, domain, name, description, owner_email, state, verification_key,
	key_hash, key_sealed, created_at, verified_at, activated_at`

// App is the row as core's type.
func (r *AppRow) App() *core.App {
	return &core.App{
		ID:              core.AppID(r.ID),
		Domain:          r.Domain,
		Name:            r.Name,
		Description:     r.Description,
		OwnerEmail:      r.OwnerEmail,
		State:           core.AppState(r.State),
		VerificationKey: r.VerificationKey,
		KeyHash:         r.KeyHash,
		KeySealed:       r.KeySealed,
		CreatedAt:       FromNanos(r.CreatedAt),
		VerifiedAt:      FromNanos(r.VerifiedAt),
		ActivatedAt:     FromNanos(r.ActivatedAt),
	}
}

// GrantRow is a row of grants as sqlx scans it.
type GrantRow struct {
	PUID       string        `db:"puid"`
	UserID     string        `db:"user_id"`
	AppID      int64         `db:"app_id"`
	UserString string        `db:"userstring"`
	CreatedAt  sql.NullInt64 `db:"created_at"`
}

// GrantColumns are GrantRow's columns, in a SELECT's order.
const GrantColumns = `puid, user_id, app_id, userstring, created_at`

// Grant is the row as core's type.
func (r *GrantRow) Grant() *core.Grant {
	return &core.Grant{
		PUID:       r.PUID,
		UserID:     r.UserID,
		AppID:      core.AppID(r.AppID),
		UserString: r.UserString,
		CreatedAt:  FromNanos(r.CreatedAt),
	}
}

// Nanos is how a time is stored: Unix nanoseconds, the zero time as 0
// (no time.Time before 1970 is ever stored).
func Nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// NullNanos stores the zero time as NULL, for the columns that may be NULL.
func NullNanos(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}
}

// FromNanos reads a stored time back, in UTC; 0 and NULL are the zero time.
func FromNanos(n sql.NullInt64) time.Time {
	if !n.Valid || n.Int64 == 0 {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}
