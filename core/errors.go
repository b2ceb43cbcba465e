package core

import (
	"errors"
	"fmt"
)

// Errno is the error number of the wire contract (PROTOCOL.md §2–§4).
// A negative errno means the device session is lost.
type Errno int

// The errno table. Device channel: 1–35 and the negative ones; app
// channel and notification endpoint: 40–44.
const (
	ErrnoNotObject        Errno = 1  // frame is not a JSON object
	ErrnoUnknownType      Errno = 2  // unknown "type"
	ErrnoInvalidField     Errno = 3  // missing or invalid field
	ErrnoInvalidStatus    Errno = 4  // invalid status value
	ErrnoNeedSession      Errno = 10 // request needs a session: connect first
	ErrnoAlreadyConnected Errno = 11 // already connected on this socket
	ErrnoRateLimited      Errno = 29 // slow down
	ErrnoInvalidAssertion Errno = 34 // invalid assertion
	ErrnoExpiredAssertion Errno = 35 // assertion expired
	ErrnoBadKey           Errno = 40 // wrong API key
	ErrnoAppInactive      Errno = 41 // app not activated
	ErrnoUnknownUID       Errno = 44 // unknown app, or UID not a grant of this app

	ErrnoUnknownSession Errno = -1 // unknown or wrong session_id
	ErrnoReplaced       Errno = -2 // replaced by a newer connection of the same user and device
	ErrnoSessionTooOld  Errno = -3 // session older than device.max_session
	ErrnoShuttingDown   Errno = -4 // server shutting down
	ErrnoTooManyErrors  Errno = -5 // too many errors in a row
	ErrnoSlowConsumer   Errno = -6 // the device read too slowly; its outbox overflowed
	ErrnoInternal       Errno = 50 // the server failed; the request may be retried
)

// Fatal reports whether the errno ends the device session.
func (e Errno) Fatal() bool { return e < 0 }

// DefaultReason is what a user reads when no more specific reason is given.
func (e Errno) DefaultReason() string {
	switch e {
	case ErrnoNotObject:
		return "frame is not a JSON object"
	case ErrnoUnknownType:
		return "unknown type"
	case ErrnoInvalidField:
		return "missing or invalid field"
	case ErrnoInvalidStatus:
		return "invalid status value"
	case ErrnoNeedSession:
		return "request needs a session: send connect first"
	case ErrnoAlreadyConnected:
		return "already connected on this socket"
	case ErrnoRateLimited:
		return "slow down: rate limit hit"
	case ErrnoInvalidAssertion:
		return "invalid assertion"
	case ErrnoExpiredAssertion:
		return "assertion expired"
	case ErrnoBadKey:
		return "wrong API key"
	case ErrnoAppInactive:
		return "app not activated"
	case ErrnoUnknownUID:
		return "unknown UID"
	case ErrnoUnknownSession:
		return "unknown or wrong session_id"
	case ErrnoReplaced:
		return "replaced by a newer connection of the same user and device"
	case ErrnoSessionTooOld:
		return "session too old: connect again"
	case ErrnoShuttingDown:
		return "server shutting down: connect again"
	case ErrnoTooManyErrors:
		return "too many errors in a row"
	case ErrnoSlowConsumer:
		return "device too slow to read: connect again"
	case ErrnoInternal:
		return "internal error"
	}
	return fmt.Sprintf("errno %d", int(e))
}

// Error is a domain error that an edge maps to its wire form: an errno and
// reason in JSON, an HTTP status, an XMPP condition. Reason is for users;
// wrap the detail for logs in Err.
type Error struct {
	Errno  Errno
	Reason string
	Err    error // the cause, for logs; may be nil
}

func (e *Error) Error() string {
	reason := e.Reason
	if reason == "" {
		reason = e.Errno.DefaultReason()
	}
	if e.Err != nil {
		return fmt.Sprintf("errno %d: %s: %v", int(e.Errno), reason, e.Err)
	}
	return fmt.Sprintf("errno %d: %s", int(e.Errno), reason)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error with a formatted reason.
func Errorf(errno Errno, format string, args ...any) *Error {
	return &Error{Errno: errno, Reason: fmt.Sprintf(format, args...)}
}

// ErrnoOf returns the errno carried by err, or ErrnoInternal.
func ErrnoOf(err error) Errno {
	var e *Error
	if errors.As(err, &e) {
		return e.Errno
	}
	return ErrnoInternal
}

// ReasonOf returns the user-facing reason of err.
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		if e.Reason != "" {
			return e.Reason
		}
		return e.Errno.DefaultReason()
	}
	return ErrnoInternal.DefaultReason()
}

// Sentinel errors of the store and the registry; match with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)
