package ws

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
)

// FuzzNotificationPost: a request head the front door serves itself is one
// net/http reads the same way (method, path, Content-Length,
// Authorization, whether to close, no transfer coding), so that keeping a
// request from net/http never changes what it means.
func FuzzNotificationPost(f *testing.F) {
	f.Add("POST /7/notification HTTP/1.1\r\nHost: localhost:8080\r\nAuthorization: Bearer k\r\nContent-Length: 42\r\n\r\n")
	f.Add("POST /007/notification HTTP/1.1\r\nhost:x\r\ncontent-length:0\r\nConnection: keep-alive, close\r\n\r\n")
	f.Add("POST /7/notification HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n")
	f.Add("POST /7/notification HTTP/1.1\r\nHost: x\r\nAuthorization:  Bearer \u00a0k\u00a0 \r\nContent-Length: 3\r\n\r\n")
	f.Add("POST /7/notification HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\nContent-Length: 3\r\n\r\n")
	f.Fuzz(func(t *testing.T, head string) {
		end := strings.Index(head, "\r\n\r\n")
		if end < 0 {
			return
		}
		h, ok := notificationPost([]byte(head[:end+2]))
		if !ok {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head[:end+4])))
		if err != nil {
			t.Fatalf("%q: the front door serves a head that net/http refuses: %v", head, err)
		}
		if req.Method != "POST" || req.URL.Path != "/"+h.app+"/notification" || req.URL.RawQuery != "" ||
			req.ContentLength != int64(h.length) || len(req.TransferEncoding) > 0 ||
			req.Header.Get("Authorization") != string(h.auth) || req.Close != h.close || req.Host == "" {
			t.Fatalf("%q: front door %+v, net/http %s %s length %d auth %q close %v host %q",
				head, h, req.Method, req.URL, req.ContentLength, req.Header.Get("Authorization"), req.Close, req.Host)
		}
	})
}

// BenchmarkNotificationPost: the front door's reading of a POST's head,
// as presence-bench's clients send it.
func BenchmarkNotificationPost(b *testing.B) {
	head := []byte("POST /7/notification HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n" +
		"Authorization: Bearer 3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n" +
		"Content-Type: application/json\r\nContent-Length: 97\r\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := notificationPost(head); !ok {
			b.Fatal("refused")
		}
	}
}
