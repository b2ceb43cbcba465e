//go:build linux

package netpoll

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"time"
)

// epollSet is one epoll set and the goroutine that serves its
// connections (serveSet). There is one per core (GOMAXPROCS): that
// goroutine handles inline what never waits, so one set alone would
// serve every connection from one core.
type epollSet struct {
	fd   int             // kept: file.Fd() would make the set blocking again
	file *os.File        // fd, for the runtime's netpoller; closing it ends serveSet
	raw  syscall.RawConn // file's
}

// connTableSize is how many fds the table of connections covers: every
// fd the open-file limit allows, up to 4 M.
func connTableSize() int {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Max < 1<<22 {
		return int(lim.Max) + 1
	}
	return 1 << 16
}

func newEpollSet() (epollSet, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return epollSet{}, err
	}
	// The set's own fd is watched by the Go runtime's netpoller: the
	// goroutine that serves the set waits there, holding no thread, and
	// asks the set with a timeout of 0 (docs/decisions.md: a thread
	// blocked in epoll_wait loses its P).
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return epollSet{}, err
	}
	watched := os.NewFile(uintptr(fd), "epoll")
	// A file the netpoller refused would fail every wait at once, and no
	// connection would be read: refuse here instead, so the caller serves
	// connections another way.
	if err := watched.SetReadDeadline(time.Time{}); err != nil {
		watched.Close()
		return epollSet{}, err
	}
	raw, err := watched.SyscallConn()
	if err != nil {
		watched.Close()
		return epollSet{}, err
	}
	return epollSet{fd: fd, file: watched, raw: raw}, nil
}

func (p *Poller) closeSets() {
	for _, s := range p.sets {
		s.file.Close()
	}
}

// armEvents: each socket is armed once, edge-triggered; an event comes
// for each arrival of bytes after the last read, and nothing is re-armed.
const armEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET

// epollET is EPOLLET; package syscall spells it as a negative int.
const epollET = 1 << 31

func (p *Poller) setOf(fd int) *epollSet { return &p.sets[fd%len(p.sets)] }

// add puts c's socket in its set; false if it cannot be.
func (p *Poller) add(fd int, c *Conn) bool {
	if fd >= len(p.conns) {
		return false
	}
	p.conns[fd].Store(c)
	ev := syscall.EpollEvent{Events: armEvents, Fd: int32(fd)}
	if err := syscall.EpollCtl(p.setOf(fd).fd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.conns[fd].CompareAndSwap(c, nil)
		return false
	}
	return true
}

// remove forgets c's socket; call it before closing the socket, so that
// its fd number, once reused, is not mistaken for c.
func (p *Poller) remove(fd int, c *Conn) {
	syscall.EpollCtl(p.setOf(fd).fd, syscall.EPOLL_CTL_DEL, fd, nil)
	p.conns[fd].CompareAndSwap(c, nil)
}

// serveSet reads each connection of set with bytes, in turn, on its own
// goroutine (readable with inline true), until the set closes.
func (p *Poller) serveSet(set epollSet) {
	events := make([]syscall.EpollEvent, 256)
	var failed error // epoll_wait's own error: the set is unusable
	serve := func(fd uintptr) bool {
		n, err := syscall.EpollWait(int(fd), events, 0)
		if err != nil && !errors.Is(err, syscall.EINTR) {
			failed = err
			return true
		}
		if n <= 0 {
			return false // nothing ready: wait in the netpoller until the set has events
		}
		for i := range n {
			if c := p.conns[events[i].Fd].Load(); c != nil {
				c.readable(true)
			}
		}
		return true
	}
	for {
		err := set.raw.Read(serve)
		if failed != nil {
			p.log.Error("epoll set failed: its connections are no longer read", "err", failed)
			return
		}
		if err != nil {
			return // closed
		}
	}
}

var (
	errWouldBlock = errors.New("would block")
	errEOF        = errors.New("eof")
)

// rawOp is one read or write on a raw socket. Its callbacks are built
// once and the ops pooled: a closure made per call escapes (RawConn takes
// it through an interface).
type rawOp struct {
	b           []byte
	n           int
	err         error
	read, write func(fd uintptr) bool
}

var rawOps = sync.Pool{New: func() any {
	o := &rawOp{}
	// Never wait: epoll says when to come back for reads, and writers
	// that must wait do it with a deadline.
	o.read = func(fd uintptr) bool { o.n, o.err = syscall.Read(int(fd), o.b); return true }
	o.write = func(fd uintptr) bool { o.n, o.err = syscall.Write(int(fd), o.b); return true }
	return o
}}

// rawDo runs one op on raw with b.
func rawDo(raw syscall.RawConn, b []byte, write bool) (n int, opErr, err error) {
	o := rawOps.Get().(*rawOp)
	o.b = b
	if write {
		err = raw.Write(o.write)
	} else {
		err = raw.Read(o.read)
	}
	n, opErr = o.n, o.err
	o.b, o.n, o.err = nil, 0, nil
	rawOps.Put(o)
	if n < 0 {
		n = 0
	}
	return n, opErr, err
}

// readNow reads what the socket has without waiting: errWouldBlock when
// it has nothing, errEOF at its end.
func readNow(raw syscall.RawConn, b []byte) (int, error) {
	n, rerr, err := rawDo(raw, b, false)
	if err != nil {
		return 0, err
	}
	if errors.Is(rerr, syscall.EAGAIN) {
		return 0, errWouldBlock
	}
	if rerr == nil && n == 0 {
		return 0, errEOF
	}
	return n, rerr
}

// writeNow writes what the socket takes of b without waiting:
// errWouldBlock when it takes nothing.
func writeNow(raw syscall.RawConn, b []byte) (int, error) {
	n, werr, err := rawDo(raw, b, true)
	if err != nil {
		return 0, err
	}
	if errors.Is(werr, syscall.EAGAIN) {
		return n, errWouldBlock
	}
	return n, werr
}
