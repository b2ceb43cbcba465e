package presencetest

import (
	"encoding/json"
	"testing"
)

// Update is one element of an app channel's status array (PROTOCOL §3).
type Update struct {
	UID     string `json:"UID"`
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
	At      string `json:"at"`
	Error   string `json:"error,omitempty"`
}

// Feed reads an app channel one update at a time, whatever arrays the
// server groups them in.
type Feed struct {
	*WS
	buf []Update
}

// OpenFeed connects to ws://host/{app_id} and sends the key.
func OpenFeed(t testing.TB, url, key string) *Feed {
	t.Helper()
	c := Dial(t, url)
	c.Send(`{"key":"` + key + `"}`)
	c.Expect(`{"result":true}`)
	return &Feed{WS: c}
}

// Next returns the next update.
func (f *Feed) Next() Update {
	f.T.Helper()
	for len(f.buf) == 0 {
		data := f.Read()
		if err := json.Unmarshal([]byte(data), &f.buf); err != nil {
			f.T.Fatalf("app frame %s: %v", data, err)
		}
	}
	u := f.buf[0]
	f.buf = f.buf[1:]
	return u
}

// Expect reads the next update and checks its UID, status and message.
func (f *Feed) Expect(uid, status, message string) Update {
	f.T.Helper()
	u := f.Next()
	if u.UID != uid || u.Status != status || u.Message != message {
		f.T.Fatalf("app got %s=%s %q, want %s=%s %q", u.UID, u.Status, u.Message, uid, status, message)
	}
	return u
}
