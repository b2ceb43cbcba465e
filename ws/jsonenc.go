package ws

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/presence-service/presence/core"
)

// The hot paths (status arrays to apps, notifications to devices, short
// answers) are encoded by hand: no reflection, one buffer.

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaping what JSON requires and
// U+2028/9 (which some JavaScript parsers take for line ends). Invalid
// UTF-8 becomes U+FFFD, as with encoding/json.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339)
	return append(b, '"')
}

// appendUpdate writes one element of an app's status array.
func appendUpdate(b []byte, u core.StatusUpdate) []byte {
	b = append(b, `{"UID":`...)
	b = appendString(b, u.PUID)
	b = append(b, `,"status":"`...)
	b = append(b, u.Status.String()...)
	b = append(b, '"')
	if u.Message != "" {
		b = append(b, `,"message":`...)
		b = appendString(b, u.Message)
	}
	b = append(b, `,"at":`...)
	b = appendTime(b, u.At)
	return append(b, '}')
}

// appendNotification writes a notification frame for a device.
func appendNotification(b []byte, n core.Notification) []byte {
	b = append(b, `{"type":"notification","id":`...)
	b = appendString(b, n.ID)
	b = append(b, `,"app_id":`...)
	b = strconv.AppendInt(b, int64(n.AppID), 10)
	b = append(b, `,"UID":`...)
	b = appendString(b, n.PUID)
	b = append(b, `,"message":`...)
	b = appendString(b, n.Message)
	b = append(b, `,"action":`...)
	b = appendString(b, n.Action)
	b = append(b, `,"created_at":`...)
	b = appendTime(b, n.CreatedAt)
	b = append(b, `,"expires_at":`...)
	b = appendTime(b, n.ExpiresAt)
	return append(b, '}')
}

// appendError writes {"result":false,"errno":N,"reason":"…"} (+retry_after).
func appendError(b []byte, errno core.Errno, reason string, retryAfter int) []byte {
	b = append(b, `{"result":false,"errno":`...)
	b = strconv.AppendInt(b, int64(errno), 10)
	b = append(b, `,"reason":`...)
	b = appendString(b, reason)
	if retryAfter > 0 {
		b = append(b, `,"retry_after":`...)
		b = strconv.AppendInt(b, int64(retryAfter), 10)
	}
	return append(b, '}')
}

func appendAppIDs(b []byte, ids []core.AppID) []byte {
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(id), 10)
	}
	return append(b, ']')
}
