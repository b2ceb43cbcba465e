package ws

import (
	"strconv"
	unicodeutf8 "unicode/utf8"

	"github.com/presence-service/presence/core"
)

// decodeFastInto parses the frames devices send all the time (flat
// objects of plain strings and integer arrays) into r, which must be
// zero, without reflection. It gives up (false) on anything else:
// escapes, unknown keys, odd spacing inside values, duplicate keys;
// decodeSlow then takes the frame, and also words the errors. The fuzz
// test holds the two paths equal. A session_id equal to session (the
// device's own, the usual case) is that string itself: no copy of it per
// request.
func decodeFastInto(data []byte, r *request, session string) (ok bool) {
	p := fastParser{b: data}
	p.space()
	if !p.eat('{') {
		return false
	}
	var seen uint16
	p.space()
	if p.eat('}') {
		return false // no type: let the slow path word it
	}
	for {
		p.space()
		key, ok := p.plainBytes()
		if !ok {
			return false
		}
		p.space()
		if !p.eat(':') {
			return false
		}
		p.space()
		var bit uint16
		switch string(key) { // compiled without allocating
		case "type":
			bit = 1
			var b []byte
			b, ok = p.plainBytes()
			r.Type = internType(b)
		case "session_id":
			bit = 2
			var b []byte
			b, ok = p.plainBytes()
			if string(b) == session { // compiled without allocating
				r.SessionID = session
			} else {
				r.SessionID = string(b)
			}
		case "assertion":
			bit = 4
			r.Assertion, ok = p.plainString()
		case "device_id":
			bit = 8
			var s string
			s, ok = p.plainString()
			r.DeviceID = &s
		case "status":
			bit = 16
			var b []byte
			b, ok = p.plainBytes()
			r.Status = internStatus(b)
		case "message":
			bit = 32
			var s string
			s, ok = p.plainString()
			r.Message = &s
		case "application_ids":
			bit = 64
			r.AppIDs, ok = p.intArray()
			r.HasAppIDs = true
		case "ids":
			bit = 128
			r.IDs, ok = p.stringArray()
		default:
			return false
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		p.space()
		if p.eat('}') {
			break
		}
		if !p.eat(',') {
			return false
		}
	}
	p.space()
	if p.i != len(p.b) || seen&1 == 0 || len(r.AppIDs) > 1000 {
		return false
	}
	return true
}

type fastParser struct {
	b []byte
	i int
}

func (p *fastParser) space() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\n' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *fastParser) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// internType returns the request types as constants: a status update
// then allocates no string for its type.
func internType(b []byte) string {
	switch string(b) { // compiled without allocating
	case "status":
		return "status"
	case "ping":
		return "ping"
	case "connect":
		return "connect"
	case "visibility":
		return "visibility"
	case "ack":
		return "ack"
	}
	return string(b)
}

// statusValues are shared by every request that names one; nobody writes
// through request.Status.
var statusValues = [...]string{"online", "unavailable", "offline"}

// internStatus points at a shared copy of the usual status values.
func internStatus(b []byte) *string {
	for i := range statusValues {
		if string(b) == statusValues[i] {
			return &statusValues[i]
		}
	}
	s := string(b)
	return &s
}

// plainString reads a string with no escapes, no control characters and
// only ASCII (anything else is the slow path's, which checks UTF-8).
func (p *fastParser) plainString() (string, bool) {
	b, ok := p.plainBytes()
	return string(b), ok
}

func (p *fastParser) plainBytes() ([]byte, bool) { return p.quoted(false) }

// quoted reads a string with no escapes and no control characters,
// returning the bytes between the quotes. Without utf8 only ASCII passes;
// with it, any valid UTF-8 (encoding/json would replace invalid bytes,
// which the fast paths do not mimic).
func (p *fastParser) quoted(utf8 bool) ([]byte, bool) {
	if !p.eat('"') {
		return nil, false
	}
	start, ascii := p.i, true
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			p.i++
			s := p.b[start : p.i-1]
			if !ascii && !unicodeutf8.Valid(s) {
				return nil, false
			}
			return s, true
		}
		if c == '\\' || c < 0x20 || c >= 0x80 && !utf8 {
			return nil, false
		}
		if c >= 0x80 {
			ascii = false
		}
		p.i++
	}
	return nil, false
}

func (p *fastParser) intArray() ([]core.AppID, bool) {
	if !p.eat('[') {
		return nil, false
	}
	out := []core.AppID{}
	p.space()
	if p.eat(']') {
		return out, true
	}
	for {
		p.space()
		start := p.i
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
		}
		if p.i == start || (p.b[start] == '0' && p.i-start > 1) {
			return nil, false
		}
		n, err := strconv.ParseInt(string(p.b[start:p.i]), 10, 64)
		if err != nil {
			return nil, false
		}
		out = append(out, core.AppID(n))
		p.space()
		if p.eat(']') {
			return out, true
		}
		if !p.eat(',') {
			return nil, false
		}
	}
}

func (p *fastParser) stringArray() ([]string, bool) {
	if !p.eat('[') {
		return nil, false
	}
	var out []string
	p.space()
	if p.eat(']') {
		return []string{}, true
	}
	for {
		p.space()
		s, ok := p.plainString()
		if !ok {
			return nil, false
		}
		out = append(out, s)
		p.space()
		if p.eat(']') {
			return out, true
		}
		if !p.eat(',') {
			return nil, false
		}
	}
}
