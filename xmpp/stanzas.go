package xmpp

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/mux"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"github.com/presence-service/presence/core"
)

// handler reads each stanza whole, checks its addresses, then routes it:
// iq through a mux (ping, and service-unavailable for the rest); message
// and presence directly, because mux calls a message or presence handler
// once per payload child, and Presence reads each such stanza whole,
// once. Stanzas are matched by local name, so a component that writes
// them in jabber:client (some do) is served too.
//
// Reading the whole stanza first (at most MaxStanzaBytes, the guard saw
// to it) means every read error, a policy violation included, comes
// before the handler holds the output lock; so the stream error can be
// written then (endStream), and no handler ever reads after it wrote.
func (c *conn) handler() xmpp.Handler {
	iqs := mux.New(NSAccept,
		mux.IQFunc(stanza.GetIQ, xml.Name{Space: nsPing, Local: "ping"}, c.handlePing),
		mux.IQFunc(stanza.GetIQ, xml.Name{}, c.handleOtherIQ),
		mux.IQFunc(stanza.SetIQ, xml.Name{}, c.handleOtherIQ),
	)
	return xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		toks, err := readAll(r)
		if err != nil {
			var se stream.Error
			var syn *xml.SyntaxError
			switch {
			case errors.As(err, &se):
			case errors.As(err, &syn):
				se = withText(stream.NotWellFormed, syn.Msg)
			default:
				return err // the socket: nobody to tell
			}
			return c.fatal(se)
		}
		if !stanza.Is(start.Name, "") {
			return c.fatal(withText(stream.UnsupportedStanzaType, fmt.Sprintf("<%s/> is not a stanza", start.Name.Local)))
		}
		if _, _, err := c.addresses(start); err != nil {
			return c.fatal(err.(stream.Error))
		}
		t := struct {
			xml.TokenReader
			xmlstream.Encoder
		}{&replay{toks: toks}, r}
		switch start.Name.Local {
		case "message":
			return c.handleMessage(t, start)
		case "presence":
			return c.handlePresence(t, start)
		}
		start.Name.Space = NSAccept // what mux routes
		return iqs.HandleXMPP(t, start)
	})
}

// addresses returns who to answer (the component's from, or its JID when
// from is missing) and what the component addressed (to).
//
// from must be in the component's own domain: its bare JID, or any JID
// under it (a resource, or a localpart, as gateways use); anything else,
// subdomains included, is invalid-from, as Prosody's mod_component
// checks. A missing from is taken as the component's JID (as Prosody
// does, for compatibility). A missing or malformed to is
// improper-addressing.
func (c *conn) addresses(start *xml.StartElement) (replyTo, target jid.JID, err error) {
	var from, to string
	var hasTo bool
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "from":
			from = a.Value
		case "to":
			to, hasTo = a.Value, true
		}
	}
	replyTo = c.addr
	if from != "" {
		f, perr := jid.Parse(from)
		if perr != nil || f.Domainpart() != c.addr.Domainpart() {
			return jid.JID{}, jid.JID{}, withText(stream.InvalidFrom, fmt.Sprintf("from %q is not %s", from, c.addr))
		}
		replyTo = f
	}
	if !hasTo || to == "" {
		return jid.JID{}, jid.JID{}, withText(stream.ImproperAddressing, "stanza without a 'to'")
	}
	target, perr := jid.Parse(to)
	if perr != nil {
		return jid.JID{}, jid.JID{}, withText(stream.ImproperAddressing, fmt.Sprintf("'to' %q is not a JID", to))
	}
	return replyTo, target, nil
}

// puidOf returns the PUID that a JID names: the localpart of a JID in
// xmpp.domain (a resource is ignored).
func (c *conn) puidOf(j jid.JID) (string, bool) {
	if j.Domainpart() != c.srv.dom || j.Localpart() == "" {
		return "", false
	}
	return j.Localpart(), true
}

// handlePresence answers probes; other presence (available, subscribe,
// …) means nothing to Presence and is ignored.
func (c *conn) handlePresence(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	p, err := stanza.NewPresence(*start)
	if err != nil || p.Type != stanza.ProbePresence {
		return nil
	}
	replyTo, target, _ := c.addresses(start)
	puid, ok := c.puidOf(target)
	if !ok {
		return writeError(t, "presence", p.ID, target.String(), replyTo.String(),
			stanzaError{stanza.Cancel, stanza.ItemNotFound, "unknown UID"})
	}
	// The writer answers, so that the answer is ordered with live updates.
	c.queue(job{kind: jobProbe, id: p.ID, from: target.String(), to: replyTo.String(), puid: puid})
	return nil
}

// inMessage is the part of a <message/> that Presence reads.
type inMessage struct {
	Body []struct {
		Lang string `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
		Text string `xml:",chardata"`
	} `xml:"body"`
	OOB []struct {
		URL string `xml:"url"`
	} `xml:"jabber:x:oob x"`
	Request *struct{} `xml:"urn:xmpp:receipts request"`
}

func (m *inMessage) body() (string, bool) {
	for _, b := range m.Body {
		if b.Lang == "" {
			return b.Text, true
		}
	}
	if len(m.Body) > 0 {
		return m.Body[0].Text, true
	}
	return "", false
}

// handleMessage turns a message to puid@domain into a live notification:
// body is the message, the first jabber:x:oob url the action. Checks that
// need no store happen here and are answered at once; storing is the
// notifier's, in batches, which then queues the receipt or the error.
func (c *conn) handleMessage(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	msg, err := stanza.NewMessage(*start)
	if err != nil || msg.Type == stanza.ErrorMessage {
		return nil // never answer an error with an error
	}
	var in inMessage
	if err := decodeStanza(t, start, &in); err != nil {
		return err
	}
	replyTo, target, _ := c.addresses(start)
	reply := func(e stanzaError) error {
		return writeError(t, "message", msg.ID, target.String(), replyTo.String(), e)
	}
	body, hasBody := in.body()
	if !hasBody && len(in.OOB) == 0 {
		return nil // chat states, receipts and the like: nothing to deliver
	}
	puid, ok := c.puidOf(target)
	if !ok {
		return reply(stanzaError{stanza.Cancel, stanza.ItemNotFound, "unknown UID"})
	}
	n := core.NotificationInput{PUID: puid, Message: strings.TrimSpace(body)}
	if len(in.OOB) > 0 {
		n.Action = strings.TrimSpace(in.OOB[0].URL)
	}
	if err := core.CheckNotification(n); err != nil {
		return reply(stanzaError{stanza.Modify, stanza.NotAcceptable, core.ReasonOf(err)})
	}
	if ok, wait := c.srv.limiter(c.app).Allow(time.Now(), 1); !ok {
		c.srv.cfg.Router.Metrics.CountError(core.ErrnoRateLimited)
		secs := int(math.Ceil(wait.Seconds()))
		return reply(stanzaError{stanza.Wait, stanza.PolicyViolation, fmt.Sprintf("slow down: retry after %d s", secs)})
	}
	req := noteReq{in: n, id: msg.ID, from: target.String(), to: replyTo.String(), receipt: in.Request != nil && msg.ID != ""}
	select {
	case c.notes <- req:
	case <-c.ndone:
	}
	return nil
}

// handlePing answers a XEP-0199 ping, whatever its to in our domain.
func (c *conn) handlePing(iq stanza.IQ, t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	replyTo, target := c.replyAddrs(iq.From, iq.To)
	return writeIQResult(t, iq.ID, target, replyTo)
}

// handleOtherIQ refuses every other get or set with service-unavailable
// (mellium does that itself only on client and server streams).
func (c *conn) handleOtherIQ(iq stanza.IQ, t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	replyTo, target := c.replyAddrs(iq.From, iq.To)
	return writeError(t, "iq", iq.ID, target, replyTo,
		stanzaError{stanza.Cancel, stanza.ServiceUnavailable, ""})
}

// replyAddrs is (to, from) of an answer: the component's from (its JID
// when missing), and what it addressed.
func (c *conn) replyAddrs(from, to jid.JID) (replyTo, target string) {
	if from.Equal(jid.JID{}) {
		from = c.addr
	}
	return from.String(), to.String()
}

// decodeStanza decodes the stanza that start began into v. The decoder
// must see start itself, or it refuses the matching end element.
func decodeStanza(t xml.TokenReader, start *xml.StartElement, v any) error {
	return xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t)).Decode(v)
}

// fatal ends the stream with e and returns it, for Serve to stop.
func (c *conn) fatal(e stream.Error) error {
	c.endStream(e)
	return e
}

// readAll reads the rest of a stanza (up to and with its end element).
func readAll(r xml.TokenReader) ([]xml.Token, error) {
	var toks []xml.Token
	for {
		tok, err := r.Token()
		if tok != nil {
			toks = append(toks, xml.CopyToken(tok))
		}
		if err == io.EOF {
			return toks, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// replay gives back tokens read before.
type replay struct {
	toks []xml.Token
}

func (r *replay) Token() (xml.Token, error) {
	if len(r.toks) == 0 {
		return nil, io.EOF
	}
	tok := r.toks[0]
	r.toks = r.toks[1:]
	return tok, nil
}
