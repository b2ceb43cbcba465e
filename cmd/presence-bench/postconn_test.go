package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// readAnswer reads net/http's own answers: bodies sized and chunked (past
// 4 KiB), one after another on a keep-alive connection, and a closing
// answer.
func TestReadAnswerFromNetHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/ok":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"result":"OK"}`+"\n")
		case "/big":
			io.WriteString(w, strings.Repeat("x", 20000))
		case "/slow":
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, "slow down")
		case "/chunked":
			w.(http.Flusher).Flush()
			io.WriteString(w, "in ")
			w.(http.Flusher).Flush()
			io.WriteString(w, "pieces")
		}
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	p := &postConn{c: c, br: bufio.NewReaderSize(c, 4096)}
	ask := func(path string) (int, string, bool, error) {
		t.Helper()
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 2\r\n\r\n[]", path, host)
		status, closing, err := p.readAnswer()
		return status, string(p.body), closing, err
	}
	for _, want := range []struct {
		path    string
		status  int
		body    string
		closing bool
	}{
		{"/ok", 200, `{"result":"OK"}` + "\n", false},
		{"/big", 200, strings.Repeat("x", 20000), false},
		{"/chunked", 200, "in pieces", false},
		{"/ok", 200, `{"result":"OK"}` + "\n", false},
		{"/slow", 429, "slow down", true},
	} {
		status, body, closing, err := ask(want.path)
		if err != nil || status != want.status || body != want.body || closing != want.closing {
			t.Fatalf("%s: %d %.40q close %v, %v; want %d %.40q close %v", want.path, status, body, closing, err, want.status, want.body, want.closing)
		}
	}
}
