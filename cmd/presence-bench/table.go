package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// row is one line of the final report: a figure for Presence, the same
// figure for the relay baseline when there is one, their ratio, and the floor
// from issue 7 it is judged against.
type row struct {
	Scenario string   `json:"scenario"`
	Metric   string   `json:"metric"`
	Unit     string   `json:"unit,omitempty"`
	Presence *float64 `json:"presence,omitempty"`
	Relay    *float64 `json:"relay,omitempty"`
	Ratio    *float64 `json:"ratio,omitempty"`
	Floor    string   `json:"floor,omitempty"`
	Verdict  string   `json:"verdict,omitempty"` // "ok", "MISSED" or empty
}

func fp(v float64) *float64 { return &v }

// none marks a side that did not run (no relay figure for a Presence-only
// measurement). NaN and not -1: growths and deltas may be negative.
var none = math.NaN()

// newRow fills the ratio when both sides are there. A side that is none did
// not run; a relay that is none also means the
// figure has no baseline (memory per connection of a scenario the relay does
// not play, a latency at a rate only Presence ran).
func newRow(scenario, metric, unit string, presence, relay float64) row {
	r := row{Scenario: scenario, Metric: metric, Unit: unit}
	if !math.IsNaN(presence) {
		r.Presence = fp(presence)
	}
	if !math.IsNaN(relay) {
		r.Relay = fp(relay)
		if relay > 0 && r.Presence != nil {
			r.Ratio = fp(presence / relay)
		}
	}
	return r
}

// atLeast and atMost judge a figure against a floor and record it.
// A row without a Presence figure is judged against nothing.
func (r row) atLeast(v, floor float64, text string) row {
	if r.Presence == nil {
		return r
	}
	r.Floor = text
	r.Verdict = verdict(v >= floor)
	return r
}

func (r row) atMost(v, ceiling float64, text string) row {
	if r.Presence == nil {
		return r
	}
	r.Floor = text
	r.Verdict = verdict(v <= ceiling && !math.IsNaN(v))
	return r
}

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISSED"
}

// formatNum prints big figures with thousands separators and small ones
// (latencies in ms, KiB per connection) with the decimals that matter.
func formatNum(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "-"
	case math.Abs(v) >= 100:
		return groupThousands(strconv.FormatInt(int64(math.Round(v)), 10))
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func groupThousands(s string) string {
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func cell(v *float64, unit string) string {
	if v == nil {
		return "-"
	}
	s := formatNum(*v)
	if unit != "" {
		s += " " + unit
	}
	return s
}

// formatTable renders rows as an aligned text table: text columns left,
// number columns right, so figures line up by their last digit.
func formatTable(rows []row, columns [2]string) string {
	if columns[0] == "" {
		columns = [2]string{"presence", "relay"}
	}
	header := []string{"scenario", "metric", columns[0], columns[1], "ratio", "floor", "verdict"}
	rightAligned := []bool{false, false, true, true, true, false, false}
	cells := [][]string{header}
	for _, r := range rows {
		ratio := "-"
		if r.Ratio != nil {
			ratio = strconv.FormatFloat(*r.Ratio, 'f', 2, 64)
		}
		cells = append(cells, []string{
			r.Scenario, r.Metric, cell(r.Presence, r.Unit), cell(r.Relay, r.Unit),
			ratio, orDash(r.Floor), orDash(r.Verdict),
		})
	}
	widths := make([]int, len(header))
	for _, line := range cells {
		for i, c := range line {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	for n, line := range cells {
		for i, c := range line {
			pad := strings.Repeat(" ", widths[i]-len([]rune(c)))
			if i > 0 {
				b.WriteString("  ")
			}
			if rightAligned[i] {
				b.WriteString(pad + c)
			} else if i == len(line)-1 {
				b.WriteString(c)
			} else {
				b.WriteString(c + pad)
			}
		}
		b.WriteByte('\n')
		if n == 0 {
			for i, w := range widths {
				if i > 0 {
					b.WriteString("  ")
				}
				b.WriteString(strings.Repeat("-", w))
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// report is the JSON form of a run: the rows plus the detail behind them
// (checkpoints, errors by kind, the machine).
type report struct {
	// Columns names the two sides: Presence and the relay unless set
	// (-cluster: the cluster and one node). The JSON keeps the fields
	// presence and relay for them.
	Columns [2]string                   `json:"columns"`
	Started string                      `json:"started"`
	Machine machineInfo                 `json:"machine"`
	Args    []string                    `json:"args"`
	Rows    []row                       `json:"rows"`
	Errors  map[string]map[string]int64 `json:"errors"` // by run, then by kind
	Details map[string]any              `json:"details"`
}

// errs records a run's errors by kind; runs without errors are listed too,
// so "none" is a statement and not an omission.
func (r *report) errs(run string, m map[string]int64) {
	if r.Errors == nil {
		r.Errors = map[string]map[string]int64{}
	}
	r.Errors[run] = m
}

func (r *report) errorLines() string {
	keys := make([]string, 0, len(r.Errors))
	for k := range r.Errors {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-34s %s\n", k, formatErrs(r.Errors[k]))
	}
	return b.String()
}

func (r *report) add(rows ...row) { r.Rows = append(r.Rows, rows...) }

func (r *report) detail(key string, v any) {
	if r.Details == nil {
		r.Details = map[string]any{}
	}
	r.Details[key] = v
}

func (r *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// machineInfo says what the figures were measured on: they mean little
// without it.
type machineInfo struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model"`
	MemTotal string `json:"mem_total"`
	Kernel   string `json:"kernel"`
	GoVer    string `json:"go"`
	FDLimit  uint64 `json:"fd_limit"`
	Ports    string `json:"ephemeral_ports"`
}

func (m machineInfo) String() string {
	return fmt.Sprintf("%d CPUs (%s), %s RAM, kernel %s, %s, fd limit %d, ephemeral ports %s",
		m.CPUs, m.CPUModel, m.MemTotal, m.Kernel, m.GoVer, m.FDLimit, m.Ports)
}
