package xmpp

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/presence-service/presence/core"
)

// Presence stanzas, the bulk of what the writer sends, are appended as
// bytes rather than encoded token by token: through mellium's stanza
// encoder and encoding/xml each one cost about 4 µs and a dozen
// allocations, a random id from crypto/rand among them, and the writer
// sends one per update per app. Everything else the server writes (receipts,
// errors, pongs) still goes through the encoder.
//
// The output is what the encoder wrote, but for the id, which is a
// counter of the stream instead of random (RFC 6120 §8.1.3 only asks it
// be unique), and empty elements, which are self-closed.

// appendPresence appends u as PROTOCOL §7's table says: online is a bare
// presence, unavailable is <show>away</show>, offline is
// type='unavailable'; a message goes in <status>; an update that waited
// delayAfter or more carries its time (XEP-0203).
func appendPresence(b []byte, id uint64, from, to string, u core.StatusUpdate, now time.Time) []byte {
	b = append(b, `<presence xmlns="jabber:component:accept" id="p`...)
	b = strconv.AppendUint(b, id, 36)
	b = append(b, `" from="`...)
	b = appendEscaped(b, from)
	b = append(b, `" to="`...)
	b = appendEscaped(b, to)
	b = append(b, '"')
	if u.Status == core.Offline {
		b = append(b, ` type="unavailable"`...)
	}
	delayed := !u.At.IsZero() && now.Sub(u.At) >= delayAfter
	hasStatus := u.Status != core.Offline && u.Message != ""
	if u.Status != core.Unavailable && !hasStatus && !delayed {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	if u.Status == core.Unavailable {
		b = append(b, "<show>away</show>"...)
	}
	if hasStatus {
		b = append(b, "<status>"...)
		b = appendEscaped(b, u.Message)
		b = append(b, "</status>"...)
	}
	if delayed {
		b = append(b, `<delay xmlns="`+nsDelay+`" from="`...)
		b = appendEscaped(b, to2domain(from))
		b = append(b, `" stamp="`...)
		b = u.At.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
		b = append(b, `"/>`...)
	}
	return append(b, "</presence>"...)
}

// appendEscaped appends s escaped for XML text or a double-quoted
// attribute, as encoding/xml's EscapeText does: the five specials and
// tab, newline and carriage return become references, and what is not an
// XML character (invalid UTF-8, most control characters, U+FFFE, U+FFFF)
// becomes U+FFFD.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		// Runs of plain ASCII, the usual case, go in whole.
		j := i
		for j < len(s) && plainASCII(s[j]) {
			j++
		}
		b = append(b, s[i:j]...)
		if i = j; i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case c == '&':
				b = append(b, "&amp;"...)
			case c == '<':
				b = append(b, "&lt;"...)
			case c == '>':
				b = append(b, "&gt;"...)
			case c == '"':
				b = append(b, "&#34;"...)
			case c == '\'':
				b = append(b, "&#39;"...)
			case c == '\t':
				b = append(b, "&#x9;"...)
			case c == '\n':
				b = append(b, "&#xA;"...)
			case c == '\r':
				b = append(b, "&#xD;"...)
			case c < 0x20:
				b = append(b, "\uFFFD"...)
			default:
				b = append(b, c)
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == 0xFFFE || r == 0xFFFF {
			b = append(b, "\uFFFD"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}

// plainASCII reports whether c stands for itself in XML text and
// attributes.
func plainASCII(c byte) bool {
	return c >= 0x20 && c < utf8.RuneSelf && c != '&' && c != '<' && c != '>' && c != '"' && c != '\''
}
