#!/usr/bin/python3
"""Interop peer for Presence's XEP-0114 listener: slixmpp's ComponentXMPP.

Driven by xmpp/interop_test.go. Usage:

    slixmpp_peer.py HOST PORT COMPONENT_JID API_KEY

It prints one JSON object per line on stdout for what it receives
({"event": "ready"|"presence"|"error"|"receipt"|"closed", ...}) and reads
commands from stdin, one per line:

    probe JID
    message JID ID URL BODY...
    quit

Run it with Debian's /usr/bin/python3 and python3-slixmpp.
"""

import asyncio
import json
import logging
import os
import sys

from slixmpp.componentxmpp import ComponentXMPP


def emit(**event):
    print(json.dumps(event), flush=True)


STANZA_ERRORS = "{urn:ietf:params:xml:ns:xmpp-stanzas}"


def condition(stanza):
    """The defined condition of a stanza error, read from the raw XML.

    slixmpp's Error plugin looks for {jabber:client}error only, while on a
    component stream the <error/> element inherits jabber:component:accept
    (as it does from Prosody too), so stanza["error"]["condition"] reads a
    default "feature-not-implemented" there.
    """
    for child in stanza.xml:
        if child.tag.endswith("}error"):
            for cond in child:
                if cond.tag.startswith(STANZA_ERRORS) and not cond.tag.endswith("}text"):
                    return cond.tag[len(STANZA_ERRORS):]
    return ""


class Peer(ComponentXMPP):
    def __init__(self, jid, secret, host, port):
        super().__init__(jid, secret, host, port)
        self.register_plugin("xep_0066")  # jabber:x:oob
        self.register_plugin("xep_0184", {"auto_ack": False, "auto_request": False})
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("presence", self.on_presence)
        self.add_event_handler("message_error", self.on_message_error)
        self.add_event_handler("receipt_received", self.on_receipt)
        self.add_event_handler("stream_error", self.on_stream_error)
        self.add_event_handler("disconnected", self.on_disconnected)
        self.done = asyncio.get_event_loop().create_future()

    async def on_start(self, _):
        emit(event="ready")
        asyncio.ensure_future(self.commands())

    def on_presence(self, pres):
        # The raw attributes: slixmpp's pres["type"] folds <show> into it.
        raw_type = pres.xml.get("type", "")
        if raw_type == "error":
            emit(event="error", stanza="presence", frm=str(pres["from"]),
                 cond=condition(pres))
            return
        emit(event="presence", frm=str(pres["from"]), to=str(pres["to"]),
             type=raw_type, show=pres["show"], status=pres["status"])

    def on_message_error(self, msg):
        emit(event="error", stanza="message", frm=str(msg["from"]),
             id=msg["id"], cond=condition(msg))

    def on_receipt(self, msg):
        emit(event="receipt", frm=str(msg["from"]), id=msg["receipt"])

    def on_stream_error(self, err):
        emit(event="stream_error", cond=err["condition"])

    def on_disconnected(self, _):
        if not self.done.done():
            self.done.set_result(None)

    async def commands(self):
        loop = asyncio.get_event_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            words = line.split()
            if not words or words[0] == "quit":
                self.disconnect()
                return
            if words[0] == "probe":
                self.send_presence(pto=words[1], pfrom=self.boundjid.bare, ptype="probe")
            elif words[0] == "message":
                to, mid, url, body = words[1], words[2], words[3], " ".join(words[4:])
                msg = self.make_message(mto=to, mfrom=self.boundjid.bare, mbody=body)
                msg["id"] = mid
                msg["oob"]["url"] = url
                msg["request_receipt"] = True
                msg.send()


def main():
    host, port, jid, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    level = logging.DEBUG if os.environ.get("PEER_DEBUG") else logging.WARNING
    logging.basicConfig(level=level, stream=sys.stderr)
    peer = Peer(jid, key, host, port)
    peer.connect()
    asyncio.get_event_loop().run_until_complete(peer.done)
    emit(event="closed")


if __name__ == "__main__":
    main()
