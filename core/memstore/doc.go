// Package memstore keeps Presence's Registry, NotificationQueues and
// StatusQueue in memory: the same contract as core/sqlite (checked by the
// shared conformance suite, core/storetest), without a file, a commit or a
// sync. It serves the unit tests of core and of the edges that are not
// about SQLite; nothing it holds survives the process.
package memstore
