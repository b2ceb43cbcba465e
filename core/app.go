package core

import (
	"crypto/sha256"
	"crypto/subtle"
	"time"
)

// AppID is an app's numeric id, assigned at registration.
type AppID int64

// AppState is where an app is in its life.
type AppState string

// App states. Only a verified app can be activated; only an active app
// receives statuses and may send notifications.
const (
	AppUnverified AppState = "unverified"
	AppVerified   AppState = "verified"
	AppActive     AppState = "active"
	AppDisabled   AppState = "disabled"
)

// App is a registered AppService.
type App struct {
	ID              AppID
	Domain          string
	Name            string
	Description     string
	OwnerEmail      string
	State           AppState
	VerificationKey string // served by the developer at http://<domain>/__presence
	KeyHash         []byte // SHA-256 of the API key; nil until activated
	KeySealed       []byte // the API key sealed under the node key, for XEP-0114
	CreatedAt       time.Time
	VerifiedAt      time.Time // zero until verified
	ActivatedAt     time.Time // zero until activated
}

// Active reports whether the app may receive statuses and send notifications.
func (a *App) Active() bool { return a.State == AppActive && a.KeyHash != nil }

// Verified reports whether the domain was proven (an active or disabled app
// was verified once).
func (a *App) Verified() bool { return a.State != AppUnverified }

// HashKey is how API keys are kept: their SHA-256. Keys are 1024 random
// characters, so a fast unsalted hash is enough to make a copy of the
// database useless to an attacker.
func HashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// CheckKey compares key with the app's stored hash in constant time.
func (a *App) CheckKey(key string) bool {
	if a.KeyHash == nil {
		return false
	}
	return subtle.ConstantTimeCompare(HashKey(key), a.KeyHash) == 1
}
