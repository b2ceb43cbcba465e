package core

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// Status is what a device says of its user. The order matters: a user's
// status for an app is the best of the devices that show it to that app.
type Status uint8

// Statuses, worst first.
const (
	Offline Status = iota
	Unavailable
	Online
)

// MaxMessageRunes bounds a status's custom message (PROTOCOL §1).
const MaxMessageRunes = 140

func (s Status) String() string {
	switch s {
	case Online:
		return "online"
	case Unavailable:
		return "unavailable"
	}
	return "offline"
}

// ParseStatus reads the wire form of a status.
func ParseStatus(s string) (Status, error) {
	switch s {
	case "online":
		return Online, nil
	case "unavailable":
		return Unavailable, nil
	case "offline":
		return Offline, nil
	}
	return Offline, Errorf(ErrnoInvalidStatus, "invalid status value %q: want online, unavailable or offline", s)
}

// MarshalText writes the wire form.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads the wire form.
func (s *Status) UnmarshalText(b []byte) error {
	v, err := ParseStatus(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Presence is a status with its optional message.
type Presence struct {
	Status  Status
	Message string
}

// CheckMessage enforces the 140-character bound on a status message.
func CheckMessage(m string) error {
	if !utf8.ValidString(m) {
		return Errorf(ErrnoInvalidField, "message: not valid UTF-8")
	}
	if n := utf8.RuneCountInString(m); n > MaxMessageRunes {
		return Errorf(ErrnoInvalidField, "message: %d characters, at most %d", n, MaxMessageRunes)
	}
	return nil
}

// StatusUpdate is what an app is told: the status of one of its PUIDs.
type StatusUpdate struct {
	PUID    string
	Status  Status
	Message string
	At      time.Time
}

func (u StatusUpdate) String() string {
	return fmt.Sprintf("%s=%s(%q)@%s", u.PUID, u.Status, u.Message, u.At.Format(time.RFC3339Nano))
}
