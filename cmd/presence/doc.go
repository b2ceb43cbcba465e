// Command presence is the one binary of the Presence service.
//
//	presence serve [-config presence.toml]   run everything
//	presence migrate                          apply schema.sql
//	presence apps list|add|activate|rotate-key|disable
//	presence token --email E                 mint a dev assertion
//	presence version
//
// With --json each command prints one JSON object, so scripts can drive
// it. Without -config the embedded default (presence.toml) is used:
// SQLite in ./data, the dev identity, loopback listeners.
package main
