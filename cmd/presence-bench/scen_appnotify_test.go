package main

import (
	"encoding/binary"
	"errors"
	"testing"
)

// The frames the scenario writes are masked client frames whose payload
// is a notification batch with the send time in its id.
func TestAppNotifyFrame(t *testing.T) {
	a := &appNotifyConn{bodies: [][]byte{[]byte(`[{"UID":"u","message":"m"}]`)}}
	a.appendBatch(12345)
	b := a.out
	if b[0] != 0x81 || b[1]&0x80 == 0 {
		t.Fatalf("head % x: want a final masked text frame", b[:2])
	}
	n := int(b[1] & 0x7F)
	mask := binary.LittleEndian.Uint32(b[2:6])
	payload := append([]byte(nil), b[6:]...)
	maskBytes(payload, mask)
	want := `{"type":"notification","id":"0.12345","items":[{"UID":"u","message":"m"}]}`
	if n != len(want) || string(payload) != want {
		t.Fatalf("payload %q (length %d), want %q", payload, n, want)
	}
}

func TestAnswerStamp(t *testing.T) {
	stamp, ok, err := answerStamp([]byte(`{"type":"notification","id":"7.999","result":"OK","queue_size":1,"results":[]}`))
	if stamp != 999 || !ok || err != nil {
		t.Fatalf("OK answer: %d %v %v", stamp, ok, err)
	}
	_, ok, err = answerStamp([]byte(`{"type":"notification","id":"8.1000","result":"error","errno":29,"reason":"slow down","retry_after":1}`))
	var en *errnoError
	if ok || !errors.As(err, &en) || en.Errno != 29 {
		t.Fatalf("errno 29 answer: %v %v", ok, err)
	}
	if _, ok, err = answerStamp([]byte(`[{"UID":"u","status":"online","at":"x"}]`)); ok || err != nil {
		t.Fatalf("status array: %v %v", ok, err)
	}
	if _, _, err = answerStamp([]byte(`{"result":false,"errno":2,"reason":"unknown type"}`)); !errors.As(err, &en) || en.Errno != 2 {
		t.Fatalf("channel error: %v", err)
	}
}
