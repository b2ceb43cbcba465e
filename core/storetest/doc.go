// Package storetest is the conformance suite of the services core is
// built on, so that the in-memory store, SQLite and the cluster's stores
// cannot drift apart. Every implementation of core.Registry runs
// RunRegistry from its own tests (memstore, core/sqlite, core/postgres);
// every set of core.NotificationQueues and core.StatusQueue runs Run
// together with the registry it checks grants against (memstore,
// core/sqlite, core/jetstream on core/postgres). It asserts what the
// contracts in core/registry.go and core/queues.go promise, and nothing
// an implementation may choose for itself (ids, error wording).
package storetest
