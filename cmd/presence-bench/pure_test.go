package main

import (
	"strings"
	"testing"
)

func TestPercentile(t *testing.T) {
	s := make([]int64, 1000)
	for i := range s {
		s[i] = int64(i + 1) // 1 … 1000
	}
	for _, tc := range []struct {
		p    float64
		want int64
	}{{50, 500}, {99, 990}, {99.9, 999}, {100, 1000}, {0, 1}, {0.01, 1}} {
		if got := percentile(s, tc.p); got != tc.want {
			t.Errorf("percentile(1..1000, %v) = %d, want %d", tc.p, got, tc.want)
		}
	}
	if got := percentile(nil, 99); got != 0 {
		t.Errorf("percentile(nil) = %d", got)
	}
	if got := percentile([]int64{7}, 99.9); got != 7 {
		t.Errorf("percentile([7]) = %d", got)
	}
}

func TestSummarizeSortsAndConvertsToMs(t *testing.T) {
	s := []int64{3e6, 1e6, 2e6}
	got := summarize(s)
	if got.N != 3 || got.P50 != 2 || got.Max != 3 || got.P99 != 3 {
		t.Errorf("summarize = %+v", got)
	}
}

func TestStampsRoundTrip(t *testing.T) {
	frame := appendStatus(nil, "sess", 1, 123456789)
	if !strings.Contains(string(frame), `"status":"unavailable"`) {
		t.Errorf("odd seq should be unavailable: %s", frame)
	}
	// Presence's app frame is an array of updates carrying the messages.
	app := `[{"UID":"a","status":"online","message":"bench@42","at":"x"},{"UID":"b","status":"offline"},` +
		`{"UID":"c","message":"bench@7"}]`
	var got []int64
	n := scanStamps([]byte(app), func(v int64) { got = append(got, v) })
	if n != 2 || got[0] != 42 || got[1] != 7 {
		t.Errorf("scanStamps = %d %v", n, got)
	}
	// The relay forwards the device frame itself inside an array.
	got = nil
	scanStamps(append(append([]byte("["), frame...), ']'), func(v int64) { got = append(got, v) })
	if len(got) != 1 || got[0] != 123456789 {
		t.Errorf("relay frame stamps = %v", got)
	}
	if len(frame) > 200 {
		t.Errorf("status frame too long: %d", len(frame))
	}
}

func TestClassify(t *testing.T) {
	if a, err := classify([]byte(`{"result":true}`)); !a || err != nil {
		t.Errorf("result true: %v %v", a, err)
	}
	if a, err := classify([]byte(`{"result": true, "x": 1}`)); !a || err != nil {
		t.Errorf("spaced result true: %v %v", a, err)
	}
	if a, _ := classify([]byte(`{"type":"notification","id":"1"}`)); a {
		t.Errorf("pushed frame taken for an answer")
	}
	_, err := classify([]byte(`{"result":false,"errno":29,"reason":"slow down"}`))
	if errKind(err) != "errno 29" {
		t.Errorf("errno kind = %q", errKind(err))
	}
}

func TestFormatNum(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{{1234567, "1,234,567"}, {100, "100"}, {-4321, "-4,321"}, {12.34, "12.3"}, {0.856, "0.86"}, {999.6, "1,000"}} {
		if got := formatNum(tc.v); got != tc.want {
			t.Errorf("formatNum(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestFormatTableAlignsAndJudges(t *testing.T) {
	rows := []row{
		newRow("status", "max delivered/s", "", 40000, 70000),
		newRow("notify", "single-item POSTs/s", "", 25000, none).atLeast(25000, 20000, "≥ 20,000"),
		newRow("status", "latency p99", "ms", 12.5, 1.5).atMost(12.5, 10, "≤ 10 ms"),
		newRow("connect", "relay only", "", none, 5),
	}
	out := formatTable(rows, [2]string{})
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("want header, rule and 4 rows:\n%s", out)
	}
	for _, want := range []string{"40,000", "70,000", "0.57", "ok", "MISSED", "12.5 ms"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// Right-aligned numbers end in the same column.
	end := strings.Index(lines[2], "40,000") + len("40,000")
	if got := strings.Index(lines[3], "25,000") + len("25,000"); got != end {
		t.Errorf("presence column not right-aligned (%d vs %d):\n%s", got, end, out)
	}
	if rows[3].Verdict != "" || rows[3].Ratio != nil {
		t.Errorf("a row without a presence figure must have no ratio or verdict: %+v", rows[3])
	}
}

func TestParseCSRF(t *testing.T) {
	for _, page := range []string{
		`<form><input type="hidden" name="csrf_token" value="abc-_123"></form>`,
		`<form><input value="abc-_123" type="hidden" name="csrf_token" /></form>`,
		"<INPUT type=\"hidden\"\n name=\"csrf_token\"\n value=\"abc-_123\">",
	} {
		got, err := parseCSRF(page)
		if err != nil || got != "abc-_123" {
			t.Errorf("parseCSRF(%q) = %q, %v", page, got, err)
		}
	}
	if got, _ := parseCSRF(`<input name="csrf_token" value="a&amp;b">`); got != "a&b" {
		t.Errorf("entities not unescaped: %q", got)
	}
	if _, err := parseCSRF(`<input name="email" value="x">`); err == nil {
		t.Error("page without token accepted")
	}
}

func TestDecodeLastJSON(t *testing.T) {
	var v struct {
		ID int `json:"app_id"`
	}
	if err := decodeLastJSON([]byte("time=… level=INFO msg=migrated\n{\"app_id\": 42, \"verification_key\": \"k\"}\n"), &v); err != nil || v.ID != 42 {
		t.Errorf("decodeLastJSON = %+v, %v", v, err)
	}
}

func TestRequireLoopback(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:80", "127.9.9.9:1", "[::1]:8080", "localhost:1"} {
		if err := requireLoopback(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"10.0.0.1:80", "example.com:443", "0.0.0.0:80"} {
		if err := requireLoopback(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestParseMetrics(t *testing.T) {
	m := parseMetrics("# HELP x\n# TYPE x gauge\npresence_devices_connected{node=\"vm\"} 19000\n" +
		"presence_errors_total{node=\"vm\",errno=\"29\"} 3\npresence_errors_total{node=\"vm\",errno=\"34\"} 4\ngo_goroutines 42\n")
	if m["presence_devices_connected"] != 19000 || m["presence_errors_total"] != 7 || m["go_goroutines"] != 42 {
		t.Errorf("parseMetrics = %v", m)
	}
}

func TestParseStatCPU(t *testing.T) {
	stat := "1234 (pres ence) (x)) S 1 1234 1234 0 -1 4194560 1000 0 0 0 250 150 0 0 20 0 12 0 100 0 0"
	if got := parseStatCPU(stat); got != 4.0 {
		t.Errorf("parseStatCPU = %v, want 4 (250+150 ticks)", got)
	}
}

func TestNegativeFiguresShow(t *testing.T) {
	r := newRow("slowapp", "RSS growth", "KiB", -1200, none).atMost(-1200, 4096, "≤ 4,096 KiB")
	if r.Presence == nil || r.Verdict != "ok" || !strings.Contains(formatTable([]row{r}, [2]string{}), "-1,200 KiB") {
		t.Errorf("a negative growth must print and pass: %+v", r)
	}
}

func TestSlopeSeesTrendThroughSawtooth(t *testing.T) {
	if got := slope([]int64{10, 12, 14, 16}); got != 2 {
		t.Errorf("slope of a line = %v, want 2", got)
	}
	saw := []int64{100, 140, 90, 130, 95, 135, 100, 140}
	if got := slope(saw); got < -3 || got > 3 {
		t.Errorf("slope of a flat sawtooth = %v, want about 0", got)
	}
	if slope([]int64{5}) != 0 {
		t.Error("one sample has no slope")
	}
}

func TestParseProcStatBusy(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	if got := parseProcStatBusy("cpu  100 5 55 1000 20 3 2 40 0 0"); got != 2.0 {
		t.Errorf("busy = %v, want 2 s (user+nice+system+steal = 200 ticks)", got)
	}
}
