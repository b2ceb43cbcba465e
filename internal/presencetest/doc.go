// Package presencetest holds the peers that tests drive a real Presence
// with: a WebSocket client for the device and app channels, an app feed
// that reads status arrays one update at a time, and a browser that signs
// in and grants through the real web pages. They speak only the wire
// contract (PROTOCOL.md), like a client written against it would.
package presencetest
