package ws

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"

	"github.com/presence-service/presence/core"
)

// maxNotifyIDChars bounds the id an app gives a notification batch on its
// channel (PROTOCOL §3), in characters.
const maxNotifyIDChars = 64

// appRequest is one frame an app sent on its channel after the key.
type appRequest struct {
	kind string // the frame's "type": "probe", "notification" or anything else

	uids []string // probe

	// notification: id is echoed in the answer when echo is set (the
	// frame's id was a JSON string, whatever its length); err, when not
	// nil, is the errno 3 (or core.ItemError) answer to the batch, and
	// items is empty.
	id    string
	echo  bool
	items []core.NotificationInput
	err   error
}

// errNotAppFrame is a frame that is not a JSON object of the app channel
// (errno 1).
var errNotAppFrame = errors.New("frame is not a JSON object of the app channel")

// decodeAppFrame parses a frame of the app channel. It fails only when the
// frame is not a JSON object with a string "type" (errno 1); a
// notification whose id or items are wrong decodes with req.err set, so
// that its refusal can carry the id.
func decodeAppFrame(data []byte) (appRequest, error) {
	if req, ok := decodeNotificationFast(data); ok {
		return req, nil
	}
	return decodeAppFrameSlow(data)
}

// decodeAppFrameSlow is decodeAppFrame with encoding/json, for any frame.
func decodeAppFrameSlow(data []byte) (appRequest, error) {
	var raw struct {
		Type  string          `json:"type"`
		UIDs  json.RawMessage `json:"UIDs"`
		ID    json.RawMessage `json:"id"`
		Items json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(data, &raw); err != nil || !isObject(data) {
		return appRequest{}, errNotAppFrame
	}
	req := appRequest{kind: raw.Type}
	switch raw.Type {
	case "probe":
		if len(raw.UIDs) > 0 && json.Unmarshal(raw.UIDs, &req.uids) != nil {
			return appRequest{}, errNotAppFrame
		}
	case "notification":
		req.id, req.echo, req.err = notificationID(raw.ID)
		if req.err == nil {
			req.items, req.err = notificationItems(raw.Items)
		}
	}
	return req, nil
}

// isObject reports whether a well-formed JSON text is an object (not
// null, which json.Unmarshal takes into a struct without complaint).
func isObject(data []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("{"))
}

// notificationID checks a batch's id: a JSON string of 1 to 64
// characters. A string of any length is echoed, so that the app can tell
// which batch was refused; anything else cannot be.
func notificationID(raw json.RawMessage) (id string, echo bool, err error) {
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &id) != nil {
		return "", false, core.Errorf(core.ErrnoInvalidField, "id: want a string of 1 to %d characters", maxNotifyIDChars)
	}
	if n := utf8.RuneCountInString(id); n == 0 || n > maxNotifyIDChars {
		return id, true, core.Errorf(core.ErrnoInvalidField, "id: want a string of 1 to %d characters", maxNotifyIDChars)
	}
	return id, true, nil
}

// notificationItems decodes a batch's items as a POST's body is decoded
// (PROTOCOL §4), naming the field "items" where a POST's refusal names
// the body.
func notificationItems(raw json.RawMessage) ([]core.NotificationInput, error) {
	if len(raw) == 0 || raw[0] != '[' {
		return nil, core.Errorf(core.ErrnoInvalidField, "items: want a JSON array of 1 to %d notifications", core.MaxNotificationBatch)
	}
	items, err := decodeNotifyItems(raw)
	if err != nil {
		var ie *core.ItemError
		if errors.As(err, &ie) {
			return nil, err
		}
		return nil, core.Errorf(core.ErrnoInvalidField, "items: want a JSON array of 1 to %d notifications", core.MaxNotificationBatch)
	}
	return items, nil
}

// decodeNotificationFast parses the shape nearly every notification frame
// has, in one pass: an object with the keys "type" ("notification"), "id"
// (1 to 64 characters) and "items" (1 to 100 items as decodeNotifyFast
// takes them), each once, spelled so, strings without escapes. On
// anything else it says false and encoding/json takes over, so that what
// the channel accepts and how it words a refusal are encoding/json's;
// FuzzDecodeAppFrame checks that both agree wherever this one answers.
//
// Why: encoding/json's pass over the frame (then another over its items)
// was most of the reader's CPU, and with a batch of 100 it cost more than
// a POST's whole decoding.
func decodeNotificationFast(data []byte) (appRequest, bool) {
	p := fastParser{b: data}
	if !p.next('{') {
		return appRequest{}, false
	}
	var req appRequest
	var seen [3]bool // type, id, items
	for {
		p.space()
		key, ok := p.quoted(false)
		if !ok || !p.next(':') {
			return req, false
		}
		var k int
		switch string(key) {
		case "type":
			k = 0
			req.kind, ok = p.text()
			ok = ok && req.kind == "notification"
		case "id":
			k = 1
			req.id, ok = p.text()
			n := utf8.RuneCountInString(req.id)
			ok = ok && n >= 1 && n <= maxNotifyIDChars
		case "items":
			k = 2
			req.items, ok = p.notifyItems()
		default:
			return req, false
		}
		if !ok || seen[k] {
			return req, false
		}
		seen[k] = true
		if p.next(',') {
			continue
		}
		if !p.next('}') || !seen[0] || !seen[1] || !seen[2] {
			return req, false
		}
		p.space()
		req.echo = true
		return req, p.i == len(p.b)
	}
}

// notifyItems takes an array of 1 to 100 notification items.
func (p *fastParser) notifyItems() ([]core.NotificationInput, bool) {
	if !p.next('[') {
		return nil, false
	}
	var items []core.NotificationInput
	for {
		if len(items) == core.MaxNotificationBatch {
			return nil, false
		}
		it, ok := p.notifyItem()
		if !ok {
			return nil, false
		}
		items = append(items, it)
		if p.next(',') {
			continue
		}
		return items, p.next(']')
	}
}
