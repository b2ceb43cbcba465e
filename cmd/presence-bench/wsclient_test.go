package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// startEcho serves a gorilla WebSocket that echoes each message, pings on
// "ping me", says whether our pong came on "pong?", and closes with 4001
// on "close".
func startEcho(t *testing.T, writeBuf int) string {
	t.Helper()
	up := websocket.Upgrader{WriteBufferSize: writeBuf}
	mux := http.NewServeMux()
	pongs := make(chan string, 1)
	mux.HandleFunc("GET /echo", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetPongHandler(func(s string) error { pongs <- s; return nil })
		for {
			op, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			switch string(b) {
			case "ping me":
				c.WriteMessage(websocket.PingMessage, []byte("p1"))
				c.WriteMessage(websocket.TextMessage, []byte("pinged"))
				continue
			case "pong?": // our pong was read (by its handler) before this
				select {
				case s := <-pongs:
					c.WriteMessage(websocket.TextMessage, []byte("pong "+s))
				default:
					c.WriteMessage(websocket.TextMessage, []byte("no pong"))
				}
				continue
			case "close":
				c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "bye"))
				return
			}
			c.WriteMessage(op, b)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func TestWSClientAgainstGorilla(t *testing.T) {
	addr := startEcho(t, 1024) // messages over 1 KiB come back fragmented
	d := newSourceDialer(addr, 50)
	c, err := d.dialWS(context.Background(), "/echo")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	for _, n := range []int{0, 1, 7, 125, 126, 1000, 5000, 65535, 65536, 200000} {
		msg := bytes.Repeat([]byte("abcdefghijk"), n/11+1)[:n]
		if err := c.WriteText(msg); err != nil {
			t.Fatal(err)
		}
		op, got, err := c.ReadMessage()
		if err != nil || op != wsText || !bytes.Equal(got, msg) {
			t.Fatalf("%d bytes: op %d, %d bytes back, %v", n, op, len(got), err)
		}
	}
	if err := c.WriteText([]byte("ping me")); err != nil {
		t.Fatal(err)
	}
	if _, got, err := c.ReadMessage(); err != nil || string(got) != "pinged" {
		t.Fatalf("ping: %q %v", got, err)
	}
	c.WriteText([]byte("pong?"))
	if _, got, err := c.ReadMessage(); err != nil || string(got) != "pong p1" {
		t.Fatalf("ping: %q %v, want the server to have got our pong", got, err)
	}
	c.WriteText([]byte("close"))
	var ce *errClosed
	if _, _, err := c.ReadMessage(); !errors.As(err, &ce) || ce.code != 4001 || errKind(err) != "close 4001" {
		t.Fatalf("close: %v", err)
	}
}

func TestWSClientRefusesABadHandshake(t *testing.T) {
	for name, answer := range map[string]string{
		"not 101":    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
		"bad accept": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
		"no upgrade": "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n",
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			buf := make([]byte, 1024)
			c.Read(buf)
			c.Write([]byte(answer))
			time.Sleep(100 * time.Millisecond)
		}()
		_, err = newSourceDialer(ln.Addr().String(), 50).dialWS(context.Background(), "/presence")
		ln.Close()
		if err == nil || !strings.Contains(err.Error(), "bad handshake") || errKind(err) != "ws handshake" {
			t.Errorf("%s: %v, want a bad handshake", name, err)
		}
	}
}

func TestMaskBytes(t *testing.T) {
	for n := range 40 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i * 7)
		}
		want := append([]byte(nil), b...)
		key := [4]byte{0x11, 0x22, 0x33, 0x44}
		for i := range want {
			want[i] ^= key[i%4]
		}
		maskBytes(b, 0x44332211)
		if !bytes.Equal(b, want) {
			t.Fatalf("%d bytes: %x, want %x", n, b, want)
		}
	}
}

func TestConnectFrameAndAnswer(t *testing.T) {
	got := string(appendConnect(nil, "a.b-c_d", []int{421, 492}, "c1-2"))
	want := `{"type":"connect","assertion":"a.b-c_d","application_ids":[421,492],"device_id":"c1-2"}`
	if got != want {
		t.Fatalf("connect frame %s, want %s", got, want)
	}
	if got := string(appendJSONString(nil, `q"é`)); got != `"q\"é"` {
		t.Fatalf("escaped string %s", got)
	}
	for frame, id := range map[string]string{
		`{"result":true,"session_id":"abc-1"}`:                               "abc-1",
		`{"result":true,"session_id":"abc-1","ignored_application_ids":[7]}`: "abc-1",
		`{"result":true,"session_id":"a\"b"}`:                                "",
		`{"result":true,"session_id":"abc`:                                   "",
		`{"result":true}`:                                                    "",
	} {
		if got, ok := sessionAnswer([]byte(frame)); got != id || ok != (id != "") {
			t.Errorf("%s: %q %v, want %q", frame, got, ok, id)
		}
	}
}
