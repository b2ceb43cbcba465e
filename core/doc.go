// Package core is the domain of Presence: users, devices, apps, PUIDs,
// statuses, live notifications, the errno table, and the Router that owns
// every live session.
//
// core knows nothing of WebSocket, XML or HTTP. Edges (package ws, xmpp,
// admin) translate their wire formats into Router calls, and receive
// events back through the small sink interfaces defined here
// (DeviceSink, AppSink). The Router is built on four small services that
// core owns (Deps): a Registry of apps, users and grants, the
// NotificationQueues, the app StatusQueue, and a Bus that carries status
// updates and invalidations between nodes (LocalBus on one node).
// core/sqlite implements the first three on one node; identity goes
// through Verifier.
//
// Lock order: a user's lock may be held while an app's lock is taken,
// never the reverse. Sinks never block: they queue and return.
package core
