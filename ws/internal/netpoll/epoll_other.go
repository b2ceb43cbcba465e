//go:build !linux

package netpoll

import (
	"errors"
	"syscall"
)

// Without epoll NewPoller fails, and no Conn is ever made.

type epollSet struct{}

var errWouldBlock = errors.New("would block")

func connTableSize() int                            { return 0 }
func newEpollSet() (epollSet, error)                { return epollSet{}, ErrUnsupported }
func (p *Poller) closeSets()                        {}
func (p *Poller) add(int, *Conn) bool               { return false }
func (p *Poller) remove(int, *Conn)                 {}
func (p *Poller) serveSet(epollSet)                 {}
func readNow(syscall.RawConn, []byte) (int, error)  { return 0, ErrUnsupported }
func writeNow(syscall.RawConn, []byte) (int, error) { return 0, ErrUnsupported }
