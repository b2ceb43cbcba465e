//go:build linux

package netpoll

import (
	"net"
	"testing"
)

// BenchmarkRawWriteRead measures an answer's write and a read event's
// read on a loopback socket, the syscalls of every status update: they
// must not allocate.
func BenchmarkRawWriteRead(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			buf := make([]byte, 64)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		b.Fatal(err)
	}
	frame := encodeFrame(opText, []byte(`{"result":true}`))
	buf := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		if n, err := writeNow(raw, frame); err != nil || n != len(frame) {
			b.Fatal(n, err)
		}
		if _, err := readNow(raw, buf); err != errWouldBlock {
			b.Fatal(err)
		}
	}
}
