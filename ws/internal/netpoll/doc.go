// Package netpoll is a server's side of RFC 6455 WebSocket connections on
// plain TCP sockets, read through epoll: an idle connection costs no
// goroutine and no read buffer. It knows nothing of what the messages
// mean; it calls up through Handler with each whole message.
//
// Contracts:
//
//   - Reading: a socket is in an epoll set, armed once, edge-triggered.
//     A set's goroutine (one set per core) reads every connection with
//     bytes, a few reads each, and passes each whole message to
//     Handler.Message with inline true: the handler must not block then,
//     and says so by returning false; that message and every later one
//     of the connection then go to a pool of goroutines that may block
//     (inline false). So one connection's messages are handled one at a
//     time and in order, and no connection waits for another's slow
//     request.
//   - Writing: frames are queued already encoded; Reply writes at once
//     what the socket takes without waiting and leaves the rest to a
//     writer goroutine, Push always leaves it to the writer. A writer
//     runs only while something is queued, and waits at most WriteWait.
//     Past the queue's bound, Handler.QueueFull is called once and
//     nothing more is queued but the close.
//   - Control frames are answered here (ping, close); a protocol error
//     closes with 1002, a message over the limit with 1009.
//   - Ending: Handler.Closed is called once, after the socket is out of
//     epoll and closed. A connection the server closed first lingers:
//     it sends FIN and drains what the peer still sends for up to 2 s,
//     so that a reset does not discard the close frame and what came
//     before it.
//
// Where epoll is missing (not Linux), NewPoller fails and the caller
// serves connections another way.
package netpoll
