package jetstream

import (
	"encoding/json"
	"fmt"
)

// decodeStored reads a message of the notification stream, refusing any
// that AddNotifications does not write: the message under a subject is a
// notification of that subject's user, app and PUID, with a nonce, so
// that the user it is listed for can ack it. Any client of the account
// can publish under presence.n.>.
func decodeStored(subject string, data []byte) (stored, error) {
	var s stored
	if err := json.Unmarshal(data, &s); err != nil {
		return stored{}, fmt.Errorf("jetstream: message of %s: %w", subject, err)
	}
	if s.Nonce == "" || s.User == "" || !validToken(s.PUID) || notificationSubject(s.User, s.App, s.PUID) != subject {
		return stored{}, fmt.Errorf("jetstream: message of %s: not a notification of that queue", subject)
	}
	return s, nil
}
