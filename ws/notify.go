package ws

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/presence-service/presence/core"
)

// maxNotifyBody caps a notification request: 100 items of two 512-character
// fields (up to 4 bytes a character) and a PUID fit well within it.
const maxNotifyBody = 512 << 10

type notifyItem struct {
	UID     *string          `json:"UID"`
	Message *string          `json:"message"`
	Action  *string          `json:"action"`
	TTL     *json.RawMessage `json:"ttl"`
}

// notifyAnswer is the answer to a notification POST.
type notifyAnswer struct {
	status     int
	body       []byte // JSON, ending in a newline
	retryAfter int    // seconds, for 429; 0: no Retry-After
}

// notifyTimeout bounds how long a POST waits for its batch's commit; a
// variable, for a test to shorten (SetNotifyTimeout).
var notifyTimeout atomic.Int64

func init() { notifyTimeout.Store(int64(30 * time.Second)) }

// serveNotify is POST /{app_id}/notification (PROTOCOL §4). It waits for
// the batch's commit (core.Router.Notify) and writes the answer itself.
// The wait does not end with the client's connection: a batch handed to
// the store may be stored anyway, and a client that closed only its
// sending side still reads the answer.
func (s *Server) serveNotify(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), time.Duration(notifyTimeout.Load()))
	defer cancel()
	a := s.notify(ctx, w, r)
	if a.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(a.retryAfter))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	w.Write(a.body)
}

// authBearer checks an Authorization header, "Bearer <api key>", for app
// from the peer at src (errno 40 without a key; core.Router.
// AuthenticateAppFrom's errors, 29 for a source that guesses keys).
func (s *Server) authBearer(ctx context.Context, app core.AppID, authorization, src string) (*core.App, error) {
	key, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok || key == "" {
		return nil, core.Errorf(core.ErrnoBadKey, "want Authorization: Bearer <api key>")
	}
	return s.router.AuthenticateAppFrom(ctx, app, key, src)
}

// notify checks, decodes and stores one POST's batch under ctx. The body
// is read only once the key has passed: an unknown caller does not get
// to make the server read 512 KiB.
func (s *Server) notify(ctx context.Context, w http.ResponseWriter, r *http.Request) notifyAnswer {
	app, ok := core.ParseAppID(r.PathValue("app_id"))
	if !ok {
		return notifyError(http.StatusNotFound, core.ErrnoUnknownUID, "unknown app", -1)
	}
	if _, err := s.authBearer(ctx, app, r.Header.Get("Authorization"), r.RemoteAddr); err != nil {
		return s.notifyFailed(err)
	}
	b, err := readBody(w, r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return notifyError(http.StatusRequestEntityTooLarge, core.ErrnoInvalidField, "body larger than 512 KiB", -1)
		}
		return notifyError(http.StatusBadRequest, core.ErrnoInvalidField, "could not read the body", -1)
	}
	items, err := decodeNotifyItems(b)
	if err != nil {
		return s.notifyFailed(err)
	}
	if ok, wait := s.router.NotifyLimiter(app).Allow(time.Now(), len(items)); !ok {
		s.router.Metrics.CountError(core.ErrnoRateLimited)
		a := notifyError(http.StatusTooManyRequests, core.ErrnoRateLimited, "slow down: notifications_per_minute reached", -1)
		a.retryAfter = int(math.Ceil(wait.Seconds()))
		return a
	}
	_, sizes, err := s.router.Notify(ctx, app, items)
	if err != nil {
		return s.notifyFailed(err)
	}
	return notifyAnswer{status: http.StatusOK, body: notifyOK(items, sizes)}
}

// readBody reads a POST's body, at most maxNotifyBody bytes: in one
// buffer of its Content-Length when the client sent one.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, maxNotifyBody)
	if n := r.ContentLength; n > 0 && n <= maxNotifyBody {
		b := make([]byte, n)
		_, err := io.ReadFull(body, b)
		return b, err
	}
	return io.ReadAll(body)
}

// notifyOK is the body of a 200: each item's PUID and queue size.
func notifyOK(items []core.NotificationInput, sizes []int) []byte {
	out := append([]byte(nil), `{"result":"OK","queue_size":`...)
	out = strconv.AppendInt(out, int64(sizes[len(sizes)-1]), 10)
	out = append(out, `,"results":[`...)
	for i, it := range items {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"UID":`...)
		out = appendString(out, it.PUID)
		out = append(out, `,"queue_size":`...)
		out = strconv.AppendInt(out, int64(sizes[i]), 10)
		out = append(out, '}')
	}
	return append(out, "]}\n"...)
}

// decodeNotifyItems parses the body: a JSON array of 1 to 100 items.
func decodeNotifyItems(body []byte) ([]core.NotificationInput, error) {
	if items, ok := decodeNotifyFast(body); ok {
		return items, nil
	}
	return decodeNotifyItemsEach(body)
}

// decodeNotifyItemsEach is encoding/json item by item, to name the item
// that is wrong.
func decodeNotifyItemsEach(body []byte) ([]core.NotificationInput, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, core.Errorf(core.ErrnoInvalidField, "body: want a JSON array of notifications")
	}
	if len(raw) == 0 || len(raw) > core.MaxNotificationBatch {
		return nil, core.Errorf(core.ErrnoInvalidField, "body: want 1 to %d notifications, got %d", core.MaxNotificationBatch, len(raw))
	}
	items := make([]core.NotificationInput, len(raw))
	for i, r := range raw {
		var it notifyItem
		if err := json.Unmarshal(r, &it); err != nil {
			return nil, &core.ItemError{Index: i, Err: core.Errorf(core.ErrnoInvalidField, "item %d: want an object with UID, message, action, ttl", i)}
		}
		if it.UID == nil || it.Message == nil {
			return nil, &core.ItemError{Index: i, Err: core.Errorf(core.ErrnoInvalidField, "item %d: UID and message are required", i)}
		}
		in := core.NotificationInput{PUID: *it.UID, Message: *it.Message}
		if it.Action != nil {
			in.Action = *it.Action
		}
		if it.TTL != nil {
			secs, err := strconv.ParseInt(string(*it.TTL), 10, 64)
			if err != nil || secs < 5 || secs > 86400 {
				return nil, &core.ItemError{Index: i, Err: core.Errorf(core.ErrnoInvalidField, "item %d: ttl: want whole seconds from 5 to 86400", i)}
			}
			in.TTL = time.Duration(secs) * time.Second
		}
		items[i] = in
	}
	return items, nil
}

// notifyFailed maps a domain error to the HTTP answer of PROTOCOL §4.
func (s *Server) notifyFailed(err error) notifyAnswer {
	index := -1
	var ie *core.ItemError
	if errors.As(err, &ie) {
		index = ie.Index
	}
	errno := core.ErrnoOf(err)
	s.router.Metrics.CountError(errno)
	status := http.StatusBadRequest
	switch errno {
	case core.ErrnoBadKey:
		status = http.StatusUnauthorized
	case core.ErrnoAppInactive:
		status = http.StatusForbidden
	case core.ErrnoUnknownUID:
		status = http.StatusNotFound
	case core.ErrnoRateLimited:
		status = http.StatusTooManyRequests
	case core.ErrnoShuttingDown:
		status = http.StatusServiceUnavailable
	case core.ErrnoInternal:
		s.log.Error("notification", "err", err)
		status = http.StatusInternalServerError
	}
	a := notifyError(status, errno, core.ReasonOf(err), index)
	a.retryAfter = core.RetryAfterOf(err)
	return a
}

func notifyError(status int, errno core.Errno, reason string, index int) notifyAnswer {
	b := append([]byte(nil), `{"result":"error","errno":`...)
	b = strconv.AppendInt(b, int64(errno), 10)
	b = append(b, `,"reason":`...)
	b = appendString(b, reason)
	if index >= 0 {
		b = append(b, `,"index":`...)
		b = strconv.AppendInt(b, int64(index), 10)
	}
	b = append(b, "}\n"...)
	return notifyAnswer{status: status, body: b}
}
