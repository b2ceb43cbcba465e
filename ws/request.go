package ws

import (
	"bytes"
	"encoding/json"
	"errors"
	"sync"

	"github.com/presence-service/presence/core"
)

// request is any device frame; which fields matter depends on Type.
type request struct {
	Type      string
	SessionID string
	Assertion string
	DeviceID  *string
	Status    *string
	Message   *string
	AppIDs    []core.AppID
	HasAppIDs bool // application_ids was present (status narrows only then)
	IDs       []string
}

// wireRequest is the JSON shape; field types are checked one by one so
// that errno 3 can name the field that is wrong.
type wireRequest struct {
	Type           *string         `json:"type"`
	SessionID      *string         `json:"session_id"`
	Assertion      *string         `json:"assertion"`
	DeviceID       *string         `json:"device_id"`
	Status         *string         `json:"status"`
	Message        *string         `json:"message"`
	ApplicationIDs json.RawMessage `json:"application_ids"`
	IDs            json.RawMessage `json:"ids"`
}

// decodeRequestInto parses a device frame, into r (zero) when the fast
// path takes it: errno 1 when it is not a JSON object, 3 naming the field
// that has the wrong type, 2 without a type. session is the device's
// session id, if any (see decodeFastInto).
func decodeRequestInto(data []byte, r *request, session string) (*request, error) {
	if decodeFastInto(data, r, session) {
		return r, nil
	}
	return decodeSlow(data)
}

// requests are pooled: a status update then allocates no request. Nothing
// keeps a request after its frame is answered (the router copies ids).
var requests = sync.Pool{New: func() any { return new(request) }}

// decodeSlow is the encoding/json path: every frame decodeFast declines.
func decodeSlow(data []byte) (*request, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(data) {
		return nil, &core.Error{Errno: core.ErrnoNotObject}
	}
	var w wireRequest
	if err := json.Unmarshal(data, &w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, core.Errorf(core.ErrnoInvalidField, "%s: wrong type, want %s", te.Field, te.Type)
		}
		return nil, &core.Error{Errno: core.ErrnoNotObject}
	}
	if w.Type == nil {
		return nil, core.Errorf(core.ErrnoUnknownType, "missing type")
	}
	r := &request{Type: *w.Type, DeviceID: w.DeviceID, Status: w.Status, Message: w.Message}
	if w.SessionID != nil {
		r.SessionID = *w.SessionID
	}
	if w.Assertion != nil {
		r.Assertion = *w.Assertion
	}
	if len(w.ApplicationIDs) > 0 && string(w.ApplicationIDs) != "null" {
		var ids []int64
		if err := json.Unmarshal(w.ApplicationIDs, &ids); err != nil {
			return nil, core.Errorf(core.ErrnoInvalidField, "application_ids: want an array of app ids")
		}
		if len(ids) > 1000 {
			return nil, core.Errorf(core.ErrnoInvalidField, "application_ids: at most 1000")
		}
		r.HasAppIDs = true
		r.AppIDs = make([]core.AppID, len(ids))
		for i, id := range ids {
			r.AppIDs[i] = core.AppID(id)
		}
	}
	if len(w.IDs) > 0 && string(w.IDs) != "null" {
		if err := json.Unmarshal(w.IDs, &r.IDs); err != nil {
			return nil, core.Errorf(core.ErrnoInvalidField, "ids: want an array of notification ids")
		}
	}
	return r, nil
}
