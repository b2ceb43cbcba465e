package core

import (
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Notification is a live notification: a short message from an app to a
// user, queued until a device of that user acks it.
type Notification struct {
	ID        string
	AppID     AppID
	PUID      string
	UserID    string
	Message   string
	Action    string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// NotificationInput is one item that an app asks to queue.
type NotificationInput struct {
	PUID    string
	Message string
	Action  string
	TTL     time.Duration // zero: notifications.default_ttl
}

// Limits on a notification (PROTOCOL §4).
const (
	MaxNotificationText  = 512
	MaxNotificationBatch = 100
	MinNotificationTTL   = 5 * time.Second
	MaxNotificationTTL   = 24 * time.Hour
)

// CheckNotification validates one item's fields (not its PUID, which needs
// the store). The errors are errno 3 naming the field.
func CheckNotification(n NotificationInput) error {
	if n.PUID == "" {
		return Errorf(ErrnoInvalidField, "UID: missing")
	}
	if !utf8.ValidString(n.Message) || !utf8.ValidString(n.Action) {
		return Errorf(ErrnoInvalidField, "message/action: not valid UTF-8")
	}
	if n.Message == "" {
		return Errorf(ErrnoInvalidField, "message: missing")
	}
	if c := utf8.RuneCountInString(n.Message); c > MaxNotificationText {
		return Errorf(ErrnoInvalidField, "message: %d characters, at most %d", c, MaxNotificationText)
	}
	if c := utf8.RuneCountInString(n.Action); c > MaxNotificationText {
		return Errorf(ErrnoInvalidField, "action: %d characters, at most %d", c, MaxNotificationText)
	}
	if n.Action != "" && !validAction(n.Action) {
		return Errorf(ErrnoInvalidField, "action: want an https: URL or an app URI")
	}
	if n.TTL != 0 && (n.TTL < MinNotificationTTL || n.TTL > MaxNotificationTTL) {
		return Errorf(ErrnoInvalidField, "ttl: must be within 5 and 86400 seconds")
	}
	return nil
}

// validAction accepts an https URL with a host, or an app URI: a custom
// scheme (myapp:room/4) that is not one a browser would run or fetch.
func validAction(s string) bool {
	if plainHTTPS(s) {
		return true
	}
	return parsedAction(s)
}

// plainHTTPS reports, without url.Parse, the usual action: "https://", a
// host of letters, digits, dots and dashes, then nothing or a path of
// characters that need no escaping. Anything else goes to parsedAction;
// FuzzValidAction checks that this never accepts what it refuses. It
// spares the common case url.Parse's cost (docs/decisions.md).
func plainHTTPS(s string) bool {
	rest, ok := strings.CutPrefix(s, "https://")
	if !ok {
		return false
	}
	host := 0
	for host < len(rest) && rest[host] != '/' {
		c := rest[host]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return false
		}
		host++
	}
	if host == 0 {
		return false
	}
	for _, c := range []byte(rest[host:]) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '/' || c == '.' || c == '-' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// parsedAction is validAction by url.Parse, for every action.
func parsedAction(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return false
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return u.Host != ""
	case "http", "javascript", "data", "file", "vbscript", "blob", "about", "ftp", "ws", "wss":
		return false
	}
	return true
}
