// Interop peer for Presence's XEP-0114 listener: xmpp.js (@xmpp/component).
//
// Driven by xmpp/interop_test.go. Usage:
//
//   node peer.js HOST PORT COMPONENT_JID API_KEY
//
// It prints one JSON object per line on stdout for what it receives
// ({"event": "ready"|"presence"|"error"|"receipt"|"closed", ...}) and reads
// commands from stdin, one per line:
//
//   probe JID
//   message JID ID URL BODY...
//   quit

import readline from "node:readline";
import xmppComponent from "@xmpp/component";

const { component, xml } = xmppComponent;
const [host, port, domain, password] = process.argv.slice(2);

const emit = (event) => process.stdout.write(JSON.stringify(event) + "\n");

const xmpp = component({ service: `xmpp://${host}:${port}`, domain, password });
// The test ends the stream on purpose; never reconnect.
xmpp.reconnect.stop();

// The defined condition of a stanza error (the child that is not <text/>).
const condition = (stanza) => {
  const err = stanza.getChild("error");
  const cond = err && err.children.find((c) => typeof c === "object" && c.name !== "text");
  return cond ? cond.name : "";
};

xmpp.on("stanza", (stanza) => {
  const { from = "", to = "", type = "", id = "" } = stanza.attrs;
  if (stanza.is("presence")) {
    if (type === "error") {
      emit({ event: "error", stanza: "presence", frm: from, cond: condition(stanza) });
      return;
    }
    emit({
      event: "presence", frm: from, to, type,
      show: stanza.getChildText("show") || "",
      status: stanza.getChildText("status") || "",
    });
  } else if (stanza.is("message")) {
    if (type === "error") {
      emit({ event: "error", stanza: "message", frm: from, id, cond: condition(stanza) });
      return;
    }
    const received = stanza.getChild("received", "urn:xmpp:receipts");
    if (received) emit({ event: "receipt", frm: from, id: received.attrs.id });
  }
});

xmpp.on("error", (err) => process.stderr.write(`xmpp error: ${err}\n`));
xmpp.on("offline", () => {
  emit({ event: "closed" });
  process.exit(0);
});

xmpp.on("online", (address) => {
  emit({ event: "ready", jid: address.toString() });
  const rl = readline.createInterface({ input: process.stdin });
  rl.on("line", async (line) => {
    const words = line.trim().split(/\s+/);
    switch (words[0]) {
      case "probe":
        await xmpp.send(xml("presence", { type: "probe", to: words[1] }));
        break;
      case "message": {
        const [, to, id, url, ...body] = words;
        await xmpp.send(
          xml("message", { to, id },
            xml("body", {}, body.join(" ")),
            xml("x", { xmlns: "jabber:x:oob" }, xml("url", {}, url)),
            xml("request", { xmlns: "urn:xmpp:receipts" })));
        break;
      }
      default:
        await xmpp.stop();
    }
  });
  rl.on("close", () => xmpp.stop());
});

xmpp.start().catch((err) => {
  process.stderr.write(`start: ${err}\n`);
  process.exit(1);
});
