package core

import "context"

// Bus carries what every node of a deployment must hear: routed status
// updates, to the nodes that hold channels of the app, and invalidations,
// to the nodes that cache what changed. On one node it is a direct call
// (LocalBus); a cluster implements it on NATS (a subject per app for
// statuses, one invalidation subject that every node subscribes to).
//
// The Router publishes through its Bus and acts on what the Bus delivers
// to it, its own messages included: a router never takes the short cut,
// so a cluster bus can replace LocalBus without a second code path.
//
// Contract, for every implementation:
//   - PublishStatus never blocks and never fails to the caller: the
//     Router calls it holding a user's lock. Updates of one (app, PUID)
//     are delivered in the order published. A bus that loses its link
//     says so through Ping, and the node stops serving (PROTOCOL §10).
//   - Invalidate returns once every node subscribed now has applied the
//     invalidation, or, in a cluster, once it is durably on its way and
//     will be applied within one second (PROTOCOL §10). The Router calls
//     it after the Registry's write has returned, so a node that applies
//     it and reads again sees the change.
//   - A subscriber's methods may be called concurrently (LocalBus calls
//     them on each publisher's goroutine); they must not block, and may
//     publish again.
type Bus interface {
	// Subscribe delivers every later message to node, until the returned
	// function is called.
	Subscribe(node BusSubscriber) (unsubscribe func())
	// PublishStatus routes u to every channel of app, on every node.
	PublishStatus(app AppID, u StatusUpdate)
	// PublishPresence tells every node what this node's devices of a
	// user now show an app. Like PublishStatus it never blocks, and one
	// node's NodePresences of a user are delivered in the order published.
	PublishPresence(p NodePresence)
	// PublishDevice tells every node of a device session's news (one
	// session per user and device across nodes: devicehandover.go). It
	// never blocks; one node's events are delivered in the order
	// published, and in order with its NodePresences.
	PublishDevice(e DeviceEvent)
	// RequestPresences asks every other node to publish again the
	// NodePresences it stands by (a node that starts: presencesync.go).
	// It never blocks.
	RequestPresences(node string)
	// PublishHeartbeat tells every node that node is alive (liveness.go).
	// It never blocks.
	PublishHeartbeat(node string)
	// PublishNotifications tells every node that ns were stored (they
	// are durable already): each node marks their users as having some
	// waiting, and pushes them to the users' devices it holds. It never
	// blocks, like PublishStatus; a node that misses it still finds them
	// queued when a device of the user connects or acks.
	PublishNotifications(ns []Notification)
	// PublishAppChannels tells every node that a node now holds a channel
	// of an app, or no longer does (sharedqueue.go). It never blocks; one
	// node's are delivered in the order published.
	PublishAppChannels(c AppChannels)
	// Invalidate tells every node that something it may cache changed.
	Invalidate(ctx context.Context, inv Invalidation) error
	// Ping returns nil while the bus can deliver (GET /healthz).
	Ping(ctx context.Context) error
}

// BusSubscriber is a node's receiving side of the Bus (the Router's).
type BusSubscriber interface {
	// DeliverStatus tells the node's channels of app an update, or keeps
	// it in the app's waiting queue when the node holds none.
	DeliverStatus(app AppID, u StatusUpdate)
	// DeliverPresence combines a node's NodePresence into the user's
	// status and tells the node's channels of the app when it changed.
	DeliverPresence(p NodePresence)
	// DeliverDevice applies a device event of another node.
	DeliverDevice(e DeviceEvent)
	// DeliverPresenceRequest answers a starting node's RequestPresences.
	DeliverPresenceRequest(node string)
	// DeliverHeartbeat records that node is alive.
	DeliverHeartbeat(node string)
	// DeliverNotifications pushes stored notifications to the devices of
	// their users that the node holds.
	DeliverNotifications(ns []Notification)
	// DeliverAppChannels records which nodes hold channels of an app.
	DeliverAppChannels(c AppChannels)
	// Invalidated drops what the node caches about the invalidation's
	// subject and applies it to the live state it holds.
	Invalidated(inv Invalidation)
}

// AppChannels says whether Node holds at least one channel of App: a node
// says Held when its first channel of the app attaches and not Held when
// its last detaches, and Held again for each app it holds when a node
// Asks (one that starts, or whose link came back).
type AppChannels struct {
	Node string
	App  AppID
	Held bool
	Ask  bool // Node asks every node to say Held again for each app it holds; App and Held are unset
}

// InvalidationKind says what changed in the Registry.
type InvalidationKind uint8

// The invalidations. A change made by the CLI, in its own process, goes
// through a Router too, and so through the same Bus.
const (
	// GrantAdded: User granted App the new PUID. Nodes holding the user's
	// devices tell the app, under the PUID, what they show it.
	GrantAdded InvalidationKind = iota + 1
	// GrantRevoked: PUID no longer exists. Nodes stop routing to it; the
	// node that revoked it tells the app a last offline.
	GrantRevoked
	// AppChanged: App's row changed (registered, verified, activated, key
	// rotated, deactivated, declared). Nodes read it again; when Close is
	// set they end the app's channels with that errno (40 key rotated, 41
	// deactivated).
	AppChanged
	// CachesLost: this node may have missed invalidations (its link to
	// the other nodes dropped and came back). It forgets every cached app
	// and grant, and reads them again when next needed; and it pushes to
	// its devices the notifications stored meanwhile, whose announcements
	// it may have missed too. A bus raises it on its own node only.
	CachesLost
)

// Invalidation is one Registry change that nodes must hear.
type Invalidation struct {
	Kind  InvalidationKind
	App   AppID
	User  string // GrantAdded, GrantRevoked
	PUID  string // GrantAdded, GrantRevoked
	Close Errno  // AppChanged: end the app's channels with this errno; 0 keeps them
}
