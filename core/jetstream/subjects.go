package jetstream

import (
	"encoding/base32"
	"fmt"
	"strconv"
	"strings"

	"github.com/presence-service/presence/core"
)

// Stream names and subject roots (docs/cluster.md).
const (
	NotificationStream = "PRESENCE_NOTIFICATIONS"
	StatusStream       = "PRESENCE_STATUS"

	notificationRoot = "presence.n"
	statusRoot       = "presence.s"
)

// userToken encodes a user id as one subject token: ids are emails or an
// identity provider's subjects, with dots and any other character.
var userToken = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func encodeUser(id string) string { return userToken.EncodeToString([]byte(id)) }

// decodeUser reads a token encodeUser made, and refuses any other: the
// decoder would also take an empty token, and one whose last character
// has unused bits set (a second spelling of the same user).
func decodeUser(tok string) (string, error) {
	b, err := userToken.DecodeString(tok)
	if err == nil && (len(b) == 0 || encodeUser(string(b)) != tok) {
		err = fmt.Errorf("jetstream: not a user token: %q", tok)
	}
	return string(b), err
}

// notificationSubject is the queue of one PUID.
func notificationSubject(user string, app core.AppID, puid string) string {
	return fmt.Sprintf("%s.%s.%d.%s", notificationRoot, encodeUser(user), app, puid)
}

// userNotifications matches every queue of a user, or of one user and app.
func userNotifications(user string) string {
	return fmt.Sprintf("%s.%s.>", notificationRoot, encodeUser(user))
}

func userAppNotifications(user string, app core.AppID) string {
	return fmt.Sprintf("%s.%s.%d.*", notificationRoot, encodeUser(user), app)
}

// appNotifications matches every queue of app, whoever its user.
func appNotifications(app core.AppID) string {
	return fmt.Sprintf("%s.*.%d.*", notificationRoot, app)
}

// puidNotifications matches the queue of a PUID whoever its user.
func puidNotifications(puid string) string {
	return fmt.Sprintf("%s.*.*.%s", notificationRoot, puid)
}

// userOfSubject reads the user id back from a notification subject,
// refusing any subject that notificationSubject does not make.
func userOfSubject(subject string) (string, error) {
	parts := strings.Split(subject, ".")
	if len(parts) != 5 || parts[0]+"."+parts[1] != notificationRoot || !validToken(parts[4]) {
		return "", fmt.Errorf("jetstream: not a notification subject: %q", subject)
	}
	if app, err := strconv.ParseInt(parts[3], 10, 64); err != nil || strconv.FormatInt(app, 10) != parts[3] {
		return "", fmt.Errorf("jetstream: not a notification subject: %q", subject)
	}
	return decodeUser(parts[2])
}

func statusSubject(app core.AppID, puid string) string {
	return fmt.Sprintf("%s.%d.%s", statusRoot, app, puid)
}

func appStatuses(app core.AppID) string { return fmt.Sprintf("%s.%d.*", statusRoot, app) }

// validToken says whether s can be a subject token: PUIDs come from apps
// (a POST's "UID"), and a dot or a wildcard in one would address other
// queues.
func validToken(s string) bool {
	return s != "" && !strings.ContainsAny(s, ".*> \t\r\n")
}
