package ws

import (
	"testing"
	"time"
)

// SetNotifyTimeout shortens how long a notification POST waits for its
// batch's commit, for the rest of t.
func SetNotifyTimeout(t testing.TB, d time.Duration) {
	old := notifyTimeout.Swap(int64(d))
	t.Cleanup(func() { notifyTimeout.Store(old) })
}

// SetHeadTimeout shortens how long a connection may take to send a
// request head, for the rest of t.
func SetHeadTimeout(t testing.TB, d time.Duration) {
	old := headTimeout.Swap(int64(d))
	t.Cleanup(func() { headTimeout.Store(old) })
}

// SetDeviceWriteWait shortens how long the epoll transport waits for a
// device's full socket, for the servers made during the rest of t.
func SetDeviceWriteWait(t testing.TB, d time.Duration) {
	old := deviceWriteWait.Swap(int64(d))
	t.Cleanup(func() { deviceWriteWait.Store(old) })
}

// decodeRequest is decodeRequestInto a new request, for a device without
// a session.
func decodeRequest(data []byte) (*request, error) {
	return decodeRequestInto(data, &request{}, "")
}

// decodeFast is the fast path alone.
func decodeFast(data []byte) (*request, bool) {
	r := &request{}
	return r, decodeFastInto(data, r, "")
}
