// Package storetest is the conformance suite of the services core is
// built on: every implementation of core.Registry, core.NotificationQueues
// and core.StatusQueue runs Run from its own tests, so that the in-memory
// store, SQLite and the cluster's stores cannot drift apart. It asserts
// what the contracts in core/registry.go and core/queues.go promise, and
// nothing an implementation may choose for itself (ids, error wording).
package storetest
