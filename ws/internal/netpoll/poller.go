package netpoll

import (
	"errors"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Options bound every connection of a Poller.
type Options struct {
	MaxMessage int           // bytes of a frame's payload, and of a whole message; over it: close 1009
	MaxQueue   int           // frames queued for writing; past it: Handler.QueueFull
	WriteWait  time.Duration // bounds a write that waits for the socket; zero: the WriteWait constant
}

func (p *Poller) writeWait() time.Duration {
	if p.opts.WriteWait > 0 {
		return p.opts.WriteWait
	}
	return WriteWait
}

// Poller reads its connections through epoll sets of its own, one per
// core, and hands work that may wait to a pool of reading goroutines.
type Poller struct {
	log   *slog.Logger
	opts  Options
	sets  []epollSet             // a connection's set is its fd modulo len(sets)
	conns []atomic.Pointer[Conn] // by fd; fds are small integers below the open-file limit
	work  chan *Conn             // to idle readers; their stacks are already grown
	done  chan struct{}          // closed once every set is closed: readers end
	bufs  sync.Pool              // read buffers, lent to a connection while it reads
}

// ErrUnsupported is NewPoller's error where there is no epoll.
var ErrUnsupported = errors.New("netpoll: no epoll on this system")

// readers is how many reading goroutines wait for work. A message whose
// handling takes long (a connect waiting on an identity verifier) ties
// one up; when none is idle, a fresh goroutine reads instead.
func readers() int { return 4 * runtime.GOMAXPROCS(0) }

// NewPoller starts the epoll sets and their readers; Close stops them.
func NewPoller(log *slog.Logger, opts Options) (*Poller, error) {
	p := &Poller{log: log, opts: opts, conns: make([]atomic.Pointer[Conn], connTableSize()),
		work: make(chan *Conn), done: make(chan struct{})}
	p.bufs.New = func() any { b := make([]byte, p.bufSize()); return &b }
	for range runtime.GOMAXPROCS(0) {
		set, err := newEpollSet()
		if err != nil {
			p.closeSets()
			return nil, err
		}
		p.sets = append(p.sets, set)
	}
	for range readers() {
		go func() {
			for {
				select {
				case c := <-p.work:
					c.readable(false)
				case <-p.done:
					return
				}
			}
		}()
	}
	var sets sync.WaitGroup
	for _, set := range p.sets {
		sets.Go(func() { p.serveSet(set) })
	}
	go func() {
		sets.Wait()
		close(p.done) // not p.work: readers send on it too (dispatch)
	}()
	return p, nil
}

// Close stops reading: the sets' goroutines and the readers end.
func (p *Poller) Close() { p.closeSets() }

// bufSize holds any frame within MaxMessage, and then some.
func (p *Poller) bufSize() int { return p.opts.MaxMessage + 14 + 1024 }

// getBuf lends a read buffer; the pool holds pointers so that giving one
// back allocates nothing.
func (p *Poller) getBuf() *[]byte  { return p.bufs.Get().(*[]byte) }
func (p *Poller) putBuf(b *[]byte) { p.bufs.Put(b) }

// NewConn wraps an upgraded plain TCP connection; nil if nc is not one.
// Call Serve next.
func (p *Poller) NewConn(nc net.Conn) *Conn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	c := &Conn{p: p, nc: nc, raw: raw, fd: -1}
	c.lastRead.Store(time.Now().UnixNano())
	return c
}

// Serve starts reading c for h: early is what the peer sent after its
// handshake, handled first. Without an epoll set that takes the socket,
// a goroutine of c's own reads it.
func (c *Conn) Serve(h Handler, early []byte) {
	c.h = h
	c.partial = early
	if len(early) > 0 {
		c.rmu.Lock()
		ended := c.consume(nil, false) == consumedEnd
		c.rmu.Unlock()
		if ended {
			return
		}
	}
	// Under Control the socket cannot be closed meanwhile, so an fd
	// number that a concurrent end freed is never put in a set.
	added := false
	c.raw.Control(func(f uintptr) {
		c.mu.Lock()
		c.fd = int(f) // before add: a set may hand c to a reader at once
		c.mu.Unlock()
		if added = c.p.add(int(f), c); !added {
			c.mu.Lock()
			c.fd = -1
			c.mu.Unlock()
		}
	})
	if !added {
		go c.readLoop()
	}
}

// dispatch hands c to an idle reader, or to a new one when none is idle.
func (p *Poller) dispatch(c *Conn) {
	select {
	case p.work <- c:
	default:
		go p.extraReader(c)
	}
}

// extraIdle is how long a reader beyond readers() waits for work before
// it ends.
const extraIdle = 2 * time.Second

// extraReader reads c, then stays to take more work until it has had none
// for extraIdle: a burst of work that needs more readers (a connect
// storm on a remote verifier) then spares a new goroutine, and the
// growth of its stack, for each message that follows.
func (p *Poller) extraReader(c *Conn) {
	c.readable(false)
	idle := time.NewTimer(extraIdle)
	defer idle.Stop()
	busy := false
	for {
		select {
		case c := <-p.work:
			c.readable(false)
			busy = true
		case <-p.done:
			return
		case <-idle.C:
			if !busy {
				return
			}
			busy = false
			idle.Reset(extraIdle)
		}
	}
}
