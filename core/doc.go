// Package core is the domain of Presence: users, devices, apps, PUIDs,
// statuses, live notifications, the errno table, and the Router that owns
// every live session.
//
// core knows nothing of WebSocket, XML or HTTP. Edges (package ws, xmpp,
// admin) translate their wire formats into Router calls, and receive
// events back through the small sink interfaces defined here
// (DeviceSink, AppSink). Durable state goes through the Store interface,
// which core/sqlite implements; identity goes through Verifier.
//
// Lock order: a user's lock may be held while an app's lock is taken,
// never the reverse. Sinks never block: they queue and return.
package core
