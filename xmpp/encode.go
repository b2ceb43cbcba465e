package xmpp

import (
	"encoding/xml"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"
)

// Namespaces of the payloads Presence reads or writes.
const (
	nsStanzaErr = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsPing      = "urn:xmpp:ping"
	nsReceipts  = "urn:xmpp:receipts"
	nsOOB       = "jabber:x:oob"
	nsDelay     = "urn:xmpp:delay"
)

// delayAfter is how old an update must be, when written, to carry its
// time (XEP-0203): updates that waited in the queue, not live ones.
const delayAfter = 2 * time.Second

// Stanzas other than presence (presence_out.go) are written token by
// token: no reflection, and the same code serves the handlers' encoders
// and the writer's. mellium's stanza encoder adds the stream's namespace
// and a random id where missing.

func attr(name, value string) xml.Attr { return xml.Attr{Name: xml.Name{Local: name}, Value: value} }

func stanzaStart(name, id, from, to, typ string) xml.StartElement {
	a := make([]xml.Attr, 0, 4)
	if id != "" {
		a = append(a, attr("id", id))
	}
	a = append(a, attr("from", from), attr("to", to))
	if typ != "" {
		a = append(a, attr("type", typ))
	}
	return xml.StartElement{Name: xml.Name{Local: name}, Attr: a}
}

// textElem writes <name xmlns=ns>text</name>.
func textElem(w xmlstream.TokenWriter, ns, name, text string, attrs ...xml.Attr) error {
	start := xml.StartElement{Name: xml.Name{Space: ns, Local: name}, Attr: attrs}
	if err := w.EncodeToken(start); err != nil {
		return err
	}
	if text != "" {
		if err := w.EncodeToken(xml.CharData(text)); err != nil {
			return err
		}
	}
	return w.EncodeToken(start.End())
}

// to2domain is the domain of a user JID, for the delay's "from".
func to2domain(userJID string) string {
	for i := 0; i < len(userJID); i++ {
		if userJID[i] == '@' {
			return userJID[i+1:]
		}
	}
	return userJID
}

// stanzaError is an error to answer a stanza with.
type stanzaError struct {
	typ  stanza.ErrorType
	cond stanza.Condition
	text string
}

// writeError answers a stanza of kind name ("message", "presence", "iq")
// with type='error', from and to swapped by the caller.
func writeError(w xmlstream.TokenWriter, name, id, from, to string, e stanzaError) error {
	start := stanzaStart(name, id, from, to, "error")
	errStart := xml.StartElement{Name: xml.Name{Local: "error"}, Attr: []xml.Attr{attr("type", string(e.typ))}}
	for _, t := range []xml.Token{start, errStart} {
		if err := w.EncodeToken(t); err != nil {
			return err
		}
	}
	if err := textElem(w, nsStanzaErr, string(e.cond), ""); err != nil {
		return err
	}
	if e.text != "" {
		if err := textElem(w, nsStanzaErr, "text", e.text); err != nil {
			return err
		}
	}
	if err := w.EncodeToken(errStart.End()); err != nil {
		return err
	}
	return w.EncodeToken(start.End())
}

// writeReceipt writes a XEP-0184 receipt for the message with id.
func writeReceipt(w xmlstream.TokenWriter, from, to, id string) error {
	start := stanzaStart("message", "", from, to, "")
	if err := w.EncodeToken(start); err != nil {
		return err
	}
	if err := textElem(w, nsReceipts, "received", "", attr("id", id)); err != nil {
		return err
	}
	return w.EncodeToken(start.End())
}

// writeIQResult writes an empty result (the answer to a ping).
func writeIQResult(w xmlstream.TokenWriter, id, from, to string) error {
	start := stanzaStart("iq", id, from, to, string(stanza.ResultIQ))
	if err := w.EncodeToken(start); err != nil {
		return err
	}
	return w.EncodeToken(start.End())
}
