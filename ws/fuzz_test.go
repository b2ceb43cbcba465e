package ws

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/presence-service/presence/core"
)

// The hand-written encoder must produce JSON that decodes back to the same
// string (invalid UTF-8 becoming U+FFFD, as encoding/json does).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", `quote " back \ slash`, "tab\tnew\nline\r", "\x00\x1f", "é ☃ 𝄞", "\u2028\u2029", "\xff\xfe", "<&>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%q encoded as %s: not JSON: %v", s, b, err)
		}
		want := strings.ToValidUTF8(s, "\ufffd")
		if !utf8.ValidString(s) {
			// encoding/json replaces each invalid byte; compare with it.
			ref, _ := json.Marshal(s)
			json.Unmarshal(ref, &want)
		}
		if back != want {
			t.Fatalf("%q came back as %q, want %q", s, back, want)
		}
	})
}

// decodeRequest never panics, and every error it returns carries one of
// the errnos of the contract.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"type":"connect","assertion":"a","application_ids":[1,2],"device_id":"d"}`,
		`{"type":"status","session_id":"s","status":"online","message":"m","application_ids":[]}`,
		`{"type":"ack","session_id":"s","ids":["a"]}`, `[]`, `null`, `{"type":1}`, `{"application_ids":"x"}`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if fast, ok := decodeFast(data); ok {
			slow, err := decodeSlow(data)
			if err != nil {
				t.Fatalf("%q: fast path accepted what encoding/json refuses: %v", data, err)
			}
			if !reflect.DeepEqual(fast, slow) {
				t.Fatalf("%q: fast %+v, slow %+v", data, fast, slow)
			}
		}
		_, err := decodeRequest(data)
		if err == nil {
			return
		}
		switch core.ErrnoOf(err) {
		case core.ErrnoNotObject, core.ErrnoUnknownType, core.ErrnoInvalidField:
		default:
			t.Fatalf("%q: unexpected error %v", data, err)
		}
	})
}

// decodeNotifyItems never panics; what it accepts holds 1 to 100 items,
// and what it refuses is errno 3, naming the item when it is one.
func FuzzDecodeNotifyItems(f *testing.F) {
	for _, s := range []string{
		`[{"UID":"abc","message":"hi","action":"https://x.example/","ttl":60}]`,
		`[]`, `{}`, `[1]`, `[{"UID":"a"}]`, `[{"UID":"a","message":"m","ttl":"x"}]`, `[{"UID":"a","message":"m","ttl":4.5}]`,
		` [ {"message":"é","UID":"a"} , {"UID":"b","message":"m","ttl":86400,"action":""} ] `,
		`[{"UID":"a","message":"m","UID":"b"}]`, `[{"uid":"a","message":"m"}]`, `[{"UID":"a","message":"\u00e9"}]`,
		`[{"UID":"a","message":"m","ttl":5e1}]`, `[{"UID":"a","message":"m","ttl":060}]`, `[{"UID":null,"message":"m"}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := decodeNotifyItems(body)
		each, eachErr := decodeNotifyItemsEach(body)
		if (err == nil) != (eachErr == nil) || (err == nil && !reflect.DeepEqual(items, each)) {
			t.Fatalf("%q: one pass %v %v, item by item %v %v", body, items, err, each, eachErr)
		}
		// The hand-written fast path accepts only what encoding/json
		// accepts, and reads it the same.
		if fast, ok := decodeNotifyFast(body); ok && (eachErr != nil || !reflect.DeepEqual(fast, each)) {
			t.Fatalf("%q: fast path %v, encoding/json %v %v", body, fast, each, eachErr)
		}
		if err != nil {
			if core.ErrnoOf(err) != core.ErrnoInvalidField {
				t.Fatalf("%q: %v, want errno 3", body, err)
			}
			return
		}
		if len(items) == 0 || len(items) > core.MaxNotificationBatch {
			t.Fatalf("%q: accepted %d items", body, len(items))
		}
	})
}
