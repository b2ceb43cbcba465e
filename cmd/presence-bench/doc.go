// Command presence-bench is the load generator of Presence: it drives a
// running server over real sockets on loopback, written only against the
// wire contract in PROTOCOL.md (device channel, app channel, notification
// POSTs, the CLI and the grant pages). It imports no server package.
//
// Every throughput figure is measured twice in the same run: once against
// Presence and once against a bare gorilla WebSocket relay (the `relay`
// subcommand, spawned as its own process) that forwards the same frames with
// no presence logic. The ratio between the two is the figure that counts on a
// shared 2-core machine, because it cancels out what the load generator and
// the kernel cost.
//
// Usage:
//
//	presence-bench -spawn [flags] connect|status|notify|appnotify|mixed|slowapp|all ...
//	presence-bench -addr 127.0.0.1:8080 -config presence.toml -bin /tmp/presence -pid N status
//	presence-bench -spawn -cluster [flags] connect|status|notify|appnotify|all
//	presence-bench relay -listen 127.0.0.1:0
//	presence-bench soak -spawn [-devices 10000 -apps 10 -duration 10m]  (scen_soak.go; README "Soak")
//
// Scenarios:
//
//   - connect: N devices connect and stay, spread over 127.0.0.x source
//     addresses; server RSS, threads and fds are read from /proc at each
//     checkpoint (default 5k/10k/19k) to give the memory slope per connection.
//   - status: D devices send status updates, K apps receive them over the
//     WebSocket app channel. A closed-loop run finds the rate each side
//     sustains; an open-loop run at half the relay's rate gives the latency
//     from device send to app receive (p50/p99/p99.9); the open-loop run is
//     repeated with every app on the XEP-0114 component channel.
//   - notify: single-item and batch-of-100 notification POSTs from C
//     keep-alive clients; notifications stored per second.
//   - appnotify: notification batches over the app channel (§3), each
//     counted once answered "OK", single items and batches of 100, beside
//     single and batch POSTs run in the same scenario (Presence only: the
//     relay has no such channel).
//   - mixed: idle devices, status traffic and notification POSTs at once.
//   - slowapp: one app stops reading for 30 s while the others' latency and
//     the server's memory are watched.
//
// With -spawn -cluster the baseline is not the relay but one node: the
// tool also starts three NATS servers (this binary's hidden nats-server
// subcommand, one process each), one PostgreSQL (internal/pgserver) and
// three nodes of the same binary sharing one node key, and runs each
// scenario on one node and on the cluster: status devices on nodes 1-2
// and apps on node 3 at a fixed 5,000 updates/s, connects and
// notifications spread over the nodes. A cluster's CPU is that of all its
// processes, split by role in the report.
//
// Beside rates and latencies the report gives the server's and the tool's
// CPU per operation (from /proc/<pid>/stat) and the share of the machine
// other processes took during each run; a relay/Presence round disturbed by
// other work is run again (-max-other, -retries).
//
// Every loop is bounded by -duration and by a -max-time watchdog, so the tool
// always stops by itself. BENCHMARKS.md at the repository root has the
// commands, the latest table and what limits each figure.
package main
