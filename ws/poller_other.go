//go:build !linux

package ws

import (
	"log/slog"
	"syscall"
)

// poller is epoll's; elsewhere every device has a reading goroutine.
type poller struct{}

func newPoller(*slog.Logger) (*poller, error)       { return nil, errNoPoller }
func (p *poller) add(int, *device) bool             { return false }
func (p *poller) dispatch(*device)                  {}
func (p *poller) remove(int, *device)               {}
func (p *poller) close()                            {}
func (p *poller) closedCh() <-chan struct{}         { return nil }
func rawFD(syscall.Conn) (int, syscall.RawConn)     { return -1, nil }
func readNow(syscall.RawConn, []byte) (int, error)  { return 0, errNoPoller }
func writeNow(syscall.RawConn, []byte) (int, error) { return 0, errWouldBlock }
