// Package presence holds what every part of the Presence service shares and
// nothing else: the embedded schema (schema.sql), the embedded default
// configuration (presence.toml) and the Config type that loads over it.
//
// The domain lives in package core; the edges (ws, xmpp, admin) import core;
// only cmd/presence wires concrete types together.
package presence
