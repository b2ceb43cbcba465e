package ws

import (
	"bytes"
	"strconv"
	"time"

	"github.com/presence-service/presence/core"
)

// decodeNotifyFast parses the shape nearly every notification body has: a
// JSON array of 1 to 100 objects with the keys "UID" and "message" and
// maybe "action" and "ttl", each once, spelled so, strings without escapes
// and ttl a whole number of seconds in range. On anything else it says
// false and encoding/json takes over (decodeNotifyItems), so that what
// the server accepts and how it words a refusal are encoding/json's;
// FuzzDecodeNotifyItems checks that both agree wherever this one answers.
// It reads with the device requests' fastParser (request_fast.go), and
// exists because encoding/json's reflection is a large share of a batch's
// CPU (docs/decisions.md).
func decodeNotifyFast(body []byte) ([]core.NotificationInput, bool) {
	p := fastParser{b: body}
	if !p.next('[') {
		return nil, false
	}
	// One allocation, sized by the braces (an upper bound on the items).
	items := make([]core.NotificationInput, 0, min(bytes.Count(body, []byte("{")), core.MaxNotificationBatch))
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
		if !p.next(']') {
			return nil, false
		}
		p.space()
		return items, p.i == len(p.b)
	}
}

// next takes c, after whitespace, if it is next.
func (p *fastParser) next(c byte) bool {
	p.space()
	return p.eat(c)
}

// text takes a string of valid UTF-8 with no escape and no control
// character, after whitespace.
func (p *fastParser) text() (string, bool) {
	p.space()
	b, ok := p.quoted(true)
	return string(b), ok
}

// ttl takes a whole number of seconds from 5 to 86400, as JSON writes it
// (no sign, no leading zero, no fraction or exponent).
func (p *fastParser) ttl() (time.Duration, bool) {
	p.space()
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	digits := p.b[start:p.i]
	if len(digits) == 0 || len(digits) > 5 || digits[0] == '0' {
		return 0, false
	}
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return 0, false
	}
	secs, err := strconv.Atoi(string(digits))
	if err != nil || secs < 5 || secs > 86400 {
		return 0, false
	}
	return time.Duration(secs) * time.Second, true
}

// notifyItem takes one object of the batch.
func (p *fastParser) notifyItem() (core.NotificationInput, bool) {
	var it core.NotificationInput
	if !p.next('{') {
		return it, false
	}
	var seen [4]bool // UID, message, action, ttl
	for {
		p.space()
		key, ok := p.quoted(false)
		if !ok || !p.next(':') {
			return it, false
		}
		var k int
		switch string(key) { // compared in place, not copied
		case "UID":
			k = 0
			it.PUID, ok = p.text()
		case "message":
			k = 1
			it.Message, ok = p.text()
		case "action":
			k = 2
			it.Action, ok = p.text()
		case "ttl":
			k = 3
			it.TTL, ok = p.ttl()
		default:
			return it, false
		}
		if !ok || seen[k] {
			return it, false
		}
		seen[k] = true
		if p.next(',') {
			continue
		}
		if !p.next('}') || !seen[0] || !seen[1] {
			return it, false
		}
		return it, true
	}
}
