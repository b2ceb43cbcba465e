// Package xmpp is Presence's XEP-0114 edge (PROTOCOL.md §7): it accepts
// AppServices as external components (jabber:component:accept) and
// treats each as a contact that receives its users' presence.
//
// Wiring (cmd/presence):
//
//	srv := xmpp.NewServer(xmpp.Config{Router: r, Domain: cfg.XMPP.Domain, TLS: tlsConfig,
//		Logger: log, NotificationsPerMinute: cfg.Limits.NotificationsPerMinute})
//	go srv.Serve(ln)          // ln on xmpp.listen; returns ErrServerClosed after Shutdown
//	defer srv.Shutdown(ctx)   // ends every stream with system-shutdown
//
// # Addresses
//
// A component's JID is <app_id>.<xmpp.domain>, exactly (no leading zero,
// no localpart or resource); its handshake secret is the app's API key.
// Users are <puid>@<xmpp.domain>; a resource on a user JID is ignored.
//
// # Handshake
//
// mellium v0.22.0 has only the connecting side of XEP-0114, so the
// accepting side is a custom xmpp.Negotiator for xmpp.ReceiveSession
// (handshake.go). It accepts clients with or without an XML declaration
// and a version attribute, and compares hex(SHA-1(id ‖ key)) in constant
// time, ignoring case. Our header carries no version: component streams
// have no stream features. Refusals, as stream errors after our header:
// a wrong namespace is invalid-namespace; a "to" that is not an app's
// component JID (or an unknown app) is host-unknown; a wrong digest or an
// app not active is not-authorized (an inactive app is told only after
// its handshake, like a wrong key); the whole handshake must end within
// Config.HandshakeTimeout (connection-timeout).
//
// A second connection of a component that is connected already is
// refused with conflict, after its handshake (strangers learn nothing
// about who is connected). The older connection wins, as in Prosody's
// mod_component: it is authenticated and working, while letting a
// newcomer take over would let two deployments of the same app that both
// believe they own it knock each other off in a loop, each reconnect
// losing presence in flight. A component whose old socket died silently
// is let in once the old one is found dead: the writer's whitespace
// keepalive (Config.KeepAlive) and write deadline close a connection that
// no longer takes data, and TCP keepalive covers the rest. Once the old
// stream has ended, its channel is detached, what it never got requeued
// and the app freed in one step (Server.letGo): a component that
// reconnects at once is never refused by its own ending connection.
//
// # Stanzas
//
// Every stanza's from must be in the component's own domain (its JID,
// with any resource or localpart, as gateways use; never a subdomain),
// else the stream ends with invalid-from; a missing from is taken as the
// component's JID, as Prosody does for compatibility. A missing or
// malformed to ends it with improper-addressing. Anything that is not a
// stanza is unsupported-stanza-type.
//
// Presence out (writer.go, presence_out.go): after the handshake the
// component gets every user who is not offline, then the queue that
// waited while it was away, then live updates, as §7's table maps them:
// online is a bare <presence/>, unavailable is <show>away</show>, offline
// is type='unavailable'; a message goes in <status>. Updates that waited
// for a while carry their time (XEP-0203 <delay/>). These stanzas are
// appended as bytes, not encoded token by token (the writer's hot path);
// their ids count up per stream ("p1", "p2", ... in base 36).
//
// Presence in: a probe to puid@domain is answered with the current
// presence, an unknown PUID with item-not-found. Other presence
// (available, subscribe, …) means nothing here and is ignored.
//
// Messages to puid@domain become live notifications: body is the
// message, the first jabber:x:oob url the action, with §4's limits and
// the default ttl. Errors come back as type='error' messages:
// not-acceptable (a field out of bounds), item-not-found (a PUID that is
// not a grant of this app), policy-violation (type wait: over
// limits.notifications_per_minute). With <request xmlns='urn:xmpp:receipts'/>
// and an id, a XEP-0184 receipt follows once the notification is stored
// durably. A message with neither body nor oob (chat states, receipts) is
// ignored; error messages are never answered.
//
// iq: XEP-0199 ping (get) is answered with a result; every other get or
// set gets service-unavailable; results and errors are dropped.
//
// The notification bucket is per app. Config.Limiter lets the caller pass
// the HTTP endpoint's bucket, so that both ways of sending draw on one
// limits.notifications_per_minute; without it this listener keeps its own.
//
// # Concurrency
//
// Per connection: mellium's Serve reads and runs the handlers; one writer
// goroutine alone drains the core.StatusOutbox (per-PUID coalescing, so
// the router never blocks and a slow component costs memory bounded by
// its user count) and a bounded queue of other stanzas (receipts, errors,
// probe answers), encoding everything ready and flushing once; one
// notifier goroutine stores messages in order, in batches of what is
// waiting (one transaction for up to 100), so a busy component is not
// held to one commit per message. Handlers never call Session.Send
// (mellium's Serve holds the output lock while a handler writes; Send from
// a handler deadlocks): they answer through their own encoder, or queue a
// job for the writer, never both. Probe answers go through the writer so
// that an answer never overtakes a newer live update. Every write has a
// deadline (Config.WriteTimeout); a component that stops reading is
// dropped, not waited for.
//
// # Limits
//
// Between the socket and mellium's XML decoder sits a byte-level lexer
// (guard.go, scanner.go): a stanza (or stream header) over
// Config.MaxStanzaBytes (64 KiB), any DTD, comment or processing
// instruction (the XML declaration aside), and any entity reference other
// than XML's five and character references end the stream with
// policy-violation before the decoder buffers anything. encoding/xml never
// expands DTD entities anyway; refusing the DTD gives the "billion laughs"
// family one clear error and costs nothing. Whitespace keepalives between
// stanzas are dropped there, so an idle stream does not grow a token.
//
// Stream errors are written by this package, never by mellium's Serve:
// v0.22.0 encodes the error into its buffered encoder and then writes
// </stream:stream> to the socket without flushing, so the peer would see
// the stream end without the condition. To make that safe, the handler
// reads each stanza whole before anything is routed (at most 64 KiB, the
// guard saw to it), so no read error can arrive while a handler holds
// the output lock.
//
// Shutdown writes what is pending for each component, then ends its
// stream with system-shutdown. A rotated key ends the stream with reset;
// a deactivated app with not-authorized.
//
// # Interop
//
// xmpp/interop_test.go drives two independent component libraries
// against a real listener when PRESENCE_INTEROP is set (install them with
// xmpp/interop/install.sh): Debian's python3-slixmpp (ComponentXMPP) and
// npm's @xmpp/component (xmpp.js). One finding: slixmpp's Error plugin
// only knows {jabber:client}error, while on a component stream the
// <error/> child inherits jabber:component:accept (from Prosody as from
// Presence), so slixmpp components must read the condition from the raw
// XML, as our peer script does.
//
// # TLS
//
// With Config.TLS set, the listener speaks XEP-0114 inside TLS from the
// first byte (like Prosody's component_ports with ssl); there is no
// STARTTLS in XEP-0114.
package xmpp
