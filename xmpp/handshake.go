package xmpp

import (
	"context"
	"crypto/rand"
	"crypto/sha1" // #nosec G505: XEP-0114 fixes SHA-1 for the handshake digest
	"crypto/subtle"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"github.com/presence-service/presence/core"
)

// NSAccept is the content namespace of XEP-0114 component streams.
const NSAccept = "jabber:component:accept"

// handshakeError is a stream error that the negotiator has already
// written to the peer, with the detail for the log.
type handshakeError struct {
	cond   stream.Error
	detail error
}

func (e *handshakeError) Error() string {
	if e.detail != nil {
		return e.cond.Err + ": " + e.detail.Error()
	}
	return e.cond.Err
}

func (e *handshakeError) Unwrap() error { return e.cond }

// negotiator is the accepting side of XEP-0114 (mellium ships only the
// connecting side): read the component's stream header, answer with ours
// and a fresh stream id, read <handshake>, check it, answer <handshake/>.
// Every refusal is written here, header first when ours was not sent yet
// (RFC 6120 §4.9.1.2), because Serve is not running to do it.
func (c *conn) negotiator() xmpp.Negotiator {
	return func(ctx context.Context, in, out *stream.Info, s *xmpp.Session, _ any) (xmpp.SessionState, io.ReadWriter, any, error) {
		h := handshake{c: c, s: s, w: s.Conn()}
		err := h.run(in, out)
		if err != nil {
			return 0, nil, nil, h.refuse(err)
		}
		return xmpp.Ready | xmpp.Authn, nil, nil, nil
	}
}

type handshake struct {
	c        *conn
	s        *xmpp.Session
	w        io.Writer
	id       string // our stream id
	from     string // what our header says we are
	sentHead bool
}

func (h *handshake) run(in, out *stream.Info) error {
	r := h.s.TokenReader()
	defer r.Close()
	d := xml.NewTokenDecoder(r)

	start, err := nextStart(d)
	if err != nil {
		return err
	}
	if start.Name.Local != "stream" || start.Name.Space != stream.NS {
		return withText(stream.InvalidNamespace, "expected <stream:stream xmlns:stream='"+stream.NS+"'>")
	}
	var xmlns, to string
	for _, a := range start.Attr {
		switch a.Name {
		case xml.Name{Local: "xmlns"}:
			xmlns = a.Value
		case xml.Name{Local: "to"}:
			to = a.Value
		}
	}
	if xmlns != NSAccept {
		return withText(stream.InvalidNamespace, "expected xmlns='"+NSAccept+"'")
	}
	app, addr, ok := h.c.srv.componentOf(to)
	h.from = h.c.srv.dom
	if ok {
		h.from = addr.String()
	}
	if err := h.sendHeader(); err != nil {
		return err
	}
	if !ok {
		return withText(stream.HostUnknown, fmt.Sprintf("no component %q here: want <app_id>.%s", to, h.c.srv.dom))
	}

	a, secret, err := h.c.srv.cfg.Router.AppSecret(context.Background(), app)
	var inactive bool
	switch {
	case errors.Is(err, core.ErrNotFound) || core.ErrnoOf(err) == core.ErrnoUnknownUID:
		return withText(stream.HostUnknown, fmt.Sprintf("no app %d", app))
	case core.ErrnoOf(err) == core.ErrnoAppInactive:
		inactive = true // refused after the handshake, like a wrong secret
	case err != nil:
		return &handshakeError{cond: stream.InternalServerError, detail: err}
	}

	start, err = nextStart(d)
	if err != nil {
		return err
	}
	if start.Name.Local != "handshake" || start.Name.Space != NSAccept {
		return withText(stream.NotAuthorized, "expected <handshake>")
	}
	var got struct {
		Digest string `xml:",chardata"`
	}
	if err := d.DecodeElement(&got, &start); err != nil {
		return err
	}
	if inactive {
		return withText(stream.NotAuthorized, "app not activated")
	}
	// The digest is a key check: metered like the other edges' (core.KeyGuard).
	router, src := h.c.srv.cfg.Router, core.SourcePrefix(h.c.raw.RemoteAddr().String())
	if err := router.AdmitKeyCheck(src, app); err != nil {
		router.Metrics.CountError(core.ErrnoRateLimited)
		return withText(stream.PolicyViolation, fmt.Sprintf("%s; retry after %d s", core.ReasonOf(err), core.RetryAfterOf(err)))
	}
	ok = digestOK(h.id, secret, got.Digest)
	router.RecordKeyCheck(src, app, ok)
	if !ok {
		return withText(stream.NotAuthorized, "wrong handshake")
	}
	if !h.c.srv.claim(app, h.c) {
		return withText(stream.Conflict, "this component is already connected")
	}
	h.c.app, h.c.addr, h.c.keyHash = app, addr, a.KeyHash
	if _, err := io.WriteString(h.w, "<handshake/>"); err != nil {
		return err
	}

	// No "to" on the input side: mellium would then blank every
	// from='<component>' it reads, and the handler could not tell an
	// explicit from from a missing one.
	in.XMLNS, in.From, in.ID = NSAccept, addr, h.id
	in.Name = xml.Name{Space: stream.NS, Local: "stream"}
	out.XMLNS, out.To, out.ID = NSAccept, addr, h.id
	out.Name = in.Name
	return nil
}

// sendHeader writes our stream header: no version (XEP-0114 streams have
// no features), an XML declaration, a fresh id.
func (h *handshake) sendHeader() error {
	var b [16]byte
	rand.Read(b[:])
	h.id = hex.EncodeToString(b[:])
	_, err := fmt.Fprintf(h.w, "<?xml version='1.0'?><stream:stream xmlns:stream='%s' xmlns='%s' from='%s' id='%s'>",
		stream.NS, NSAccept, xmlEscape(h.from), h.id)
	h.sentHead = err == nil
	return err
}

// refuse writes the stream error for err (after our header if it was not
// sent) and closes our stream. A peer that vanished gets nothing.
func (h *handshake) refuse(err error) error {
	var se stream.Error
	var he *handshakeError
	var ne net.Error
	switch {
	case h.c.isClosing():
		se = closeError(h.c.errno)
	case errors.As(err, &he):
		se = he.cond
	case errors.As(err, &se):
	case errors.As(err, &ne) && ne.Timeout():
		se = withText(stream.ConnectionTimeout, "handshake took too long")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return err
	default:
		var syn *xml.SyntaxError
		if !errors.As(err, &syn) {
			return err // a socket error: nobody to tell
		}
		se = withText(stream.NotWellFormed, syn.Msg)
	}
	if !h.sentHead {
		if h.from == "" {
			h.from = h.c.srv.dom
		}
		if h.sendHeader() != nil {
			return err
		}
	}
	writeStreamError(h.w, se)
	if he == nil {
		he = &handshakeError{cond: se, detail: err}
	}
	return he
}

// writeStreamError writes e and the end of our stream, by hand: before
// Serve there is no encoder that knows the stream is open.
func writeStreamError(w io.Writer, e stream.Error) error {
	var b strings.Builder
	fmt.Fprintf(&b, "<stream:error><%s xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>", e.Err)
	for _, t := range e.Text {
		fmt.Fprintf(&b, "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>%s</text>", xmlEscape(t.Value))
	}
	b.WriteString("</stream:error></stream:stream>")
	_, err := io.WriteString(w, b.String())
	return err
}

// nextStart returns the next start element, skipping the XML declaration
// and whitespace. Clients differ on both; XEP-0114 requires neither.
func nextStart(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.ProcInst, xml.CharData:
			// The scanner already refused every other processing
			// instruction and all non-space text before a stanza.
		case xml.EndElement:
			return xml.StartElement{}, withText(stream.NotAuthorized, "stream closed before the handshake")
		default:
			return xml.StartElement{}, withText(stream.PolicyViolation, fmt.Sprintf("unexpected %T", tok))
		}
	}
}

// digestOK compares the handshake with hex(SHA-1(id ‖ secret)) in
// constant time. Case is ignored: some libraries send upper-case hex.
func digestOK(id, secret, got string) bool {
	sum := sha1.Sum([]byte(id + secret)) // #nosec G401: fixed by XEP-0114
	want := hex.EncodeToString(sum[:])
	got = strings.ToLower(strings.TrimSpace(got))
	return subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}

// componentOf parses a stream's "to": <app_id>.<domain>, nothing else
// (no localpart, no resource, no leading zeros, no other domain).
func (s *Server) componentOf(to string) (core.AppID, jid.JID, bool) {
	addr, err := jid.Parse(to)
	if err != nil || addr.Localpart() != "" || addr.Resourcepart() != "" {
		return 0, jid.JID{}, false
	}
	label, ok := strings.CutSuffix(addr.Domainpart(), "."+s.dom)
	if !ok || label == "" || label[0] == '0' {
		return 0, jid.JID{}, false
	}
	n, err := strconv.ParseInt(label, 10, 64)
	if err != nil || n <= 0 || strconv.FormatInt(n, 10) != label {
		return 0, jid.JID{}, false
	}
	return core.AppID(n), addr, true
}

func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
