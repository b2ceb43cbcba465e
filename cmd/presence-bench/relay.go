package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// relay is the baseline: a bare gorilla WebSocket relay with no presence
// logic. Devices connect on /presence, apps on /{app_id}; every device frame
// after the first is answered {"result":true} and forwarded untouched to the
// app channels the device named in its connect frame. It does the least a
// server must do to move these frames, so Presence's figure divided by its
// figure is the share of the machine's ceiling that Presence reaches.
//
// It is fair in the ways that matter: same frames, same socket library and
// buffer sizes a careful server would pick, and the app writer batches what
// is pending into one JSON array the way Presence's app channel does.
type relay struct {
	upgrader websocket.Upgrader

	mu   sync.RWMutex // guards: apps
	apps map[int][]*relayApp

	sessions atomic.Int64
	dropped  atomic.Int64 // frames an app's full outbox could not take
}

type relayApp struct {
	conn *websocket.Conn
	out  chan []byte
}

func newRelay() *relay {
	return &relay{
		upgrader: websocket.Upgrader{
			ReadBufferSize:  1024,
			WriteBufferSize: 1024,
			WriteBufferPool: &sync.Pool{},
			CheckOrigin:     func(*http.Request) bool { return true },
		},
		apps: map[int][]*relayApp{},
	}
}

func (rl *relay) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /presence", rl.serveDevice)
	mux.HandleFunc("GET /{app}", rl.serveApp)
	mux.HandleFunc("POST /{app}/notification", rl.serveNotify)
	return mux
}

var (
	resultTrue  = []byte(`{"result":true}`)
	errNotFirst = errors.New("relay: first frame must be connect")
)

func (rl *relay) serveDevice(w http.ResponseWriter, r *http.Request) {
	c, err := rl.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	_, first, err := c.ReadMessage()
	if err != nil {
		return
	}
	// The connect frame is the only one the relay parses: it must know which
	// apps to forward to. Presence parses every frame; that is its cost.
	var hello struct {
		Type string `json:"type"`
		Apps []int  `json:"application_ids"`
	}
	if json.Unmarshal(first, &hello) != nil || hello.Type != "connect" {
		c.WriteMessage(websocket.TextMessage, []byte(`{"result":false,"errno":10,"reason":"`+errNotFirst.Error()+`"}`))
		return
	}
	id := rl.sessions.Add(1)
	answer := fmt.Sprintf(`{"result":true,"session_id":"relay-%d"}`, id)
	if err := c.WriteMessage(websocket.TextMessage, []byte(answer)); err != nil {
		return
	}
	for {
		_, frame, err := c.ReadMessage()
		if err != nil {
			return
		}
		rl.forward(hello.Apps, frame)
		if err := c.WriteMessage(websocket.TextMessage, resultTrue); err != nil {
			return
		}
	}
}

// forward never blocks: an app that does not read loses frames (counted),
// the way a relay without per-key coalescing must.
func (rl *relay) forward(appIDs []int, frame []byte) {
	rl.mu.RLock()
	defer rl.mu.RUnlock()
	for _, id := range appIDs {
		for _, a := range rl.apps[id] {
			select {
			case a.out <- frame:
			default:
				rl.dropped.Add(1)
			}
		}
	}
}

func (rl *relay) serveApp(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.PathValue("app"))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	c, err := rl.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	var hello struct {
		Key string `json:"key"`
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := c.ReadJSON(&hello); err != nil || hello.Key == "" {
		c.WriteMessage(websocket.TextMessage, []byte(`{"result":false,"errno":40,"reason":"key"}`))
		return
	}
	c.SetReadDeadline(time.Time{})
	if err := c.WriteMessage(websocket.TextMessage, resultTrue); err != nil {
		return
	}
	a := &relayApp{conn: c, out: make(chan []byte, 4096)}
	rl.mu.Lock()
	rl.apps[id] = append(rl.apps[id], a)
	rl.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.write()
	}()
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			break
		}
	}
	rl.mu.Lock()
	list := rl.apps[id]
	for i, x := range list {
		if x == a {
			rl.apps[id] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	rl.mu.Unlock()
	// forward sends only under the read lock, so after removal nobody can
	// send on out any more and closing it is safe.
	close(a.out)
	<-done
}

// write drains everything pending into one array frame, then writes once.
func (a *relayApp) write() {
	buf := make([]byte, 0, 4096)
	for first := range a.out {
		buf = append(buf[:0], '[')
		buf = append(buf, first...)
	drain:
		for len(buf) < 32<<10 {
			select {
			case f, ok := <-a.out:
				if !ok {
					break drain
				}
				buf = append(buf, ',')
				buf = append(buf, f...)
			default:
				break drain
			}
		}
		buf = append(buf, ']')
		a.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := a.conn.WriteMessage(websocket.TextMessage, buf); err != nil {
			for range a.out { // keep the channel drained until it is closed
			}
			return
		}
	}
}

// serveNotify parses the batch and answers as Presence does, storing nothing:
// the baseline for the cost of HTTP and JSON alone.
func (rl *relay) serveNotify(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") == "" {
		http.Error(w, `{"result":"error","errno":40}`, http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	var items []struct {
		UID     string `json:"UID"`
		Message string `json:"message"`
		Action  string `json:"action"`
		TTL     int    `json:"ttl"`
	}
	if err := json.Unmarshal(body, &items); err != nil || len(items) == 0 || len(items) > 100 {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"result":"error","errno":3,"reason":"batch"}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"result":"OK","queue_size":%d}`, len(items))
}

// runRelay is the `relay` subcommand: it prints "listening ADDR" on stdout
// so the tool that spawned it learns the port, and stops on SIGTERM, on
// stdin closing (with -watch-stdin: its parent died) or after -lifetime, whichever comes first.
func runRelay(args []string) error {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on (loopback only)")
	lifetime := fs.Duration("lifetime", time.Hour, "exit after this long, whatever happens")
	watchStdin := fs.Bool("watch-stdin", false, "exit when stdin closes (set by the tool that spawns the relay)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := requireLoopback(*listen); err != nil {
		return err
	}
	if _, err := raiseFileLimit(); err != nil {
		fmt.Fprintln(os.Stderr, "relay: cannot raise file limit:", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Printf("listening %s\n", ln.Addr())
	ctx, cancel := childContext(*watchStdin, *lifetime)
	defer cancel()
	srv := &http.Server{Handler: newRelay().handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// childContext is the life of a process the tool spawns (the relay, a
// NATS server): it ends on SIGTERM or SIGINT, when stdin closes (with
// watchStdin: the parent died and its end of the pipe closed), or after
// lifetime, whichever comes first.
func childContext(watchStdin bool, lifetime time.Duration) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	ctx, cancel := context.WithTimeout(ctx, lifetime)
	if watchStdin {
		go func() {
			io.Copy(io.Discard, os.Stdin)
			cancel()
		}()
	}
	return ctx, func() { cancel(); stop() }
}

// requireLoopback refuses any address that is not on loopback: this tool
// must never send load anywhere else.
func requireLoopback(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("%s is not a loopback address: presence-bench only runs on loopback", hostport)
}
