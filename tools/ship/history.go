package ship

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	nomad "github.com/hashicorp/nomad/api"
)

// MaxHistory is how many rollouts a job's history keeps.
const MaxHistory = 50

// Bounds that keep the history under Nomad's 64 KiB per Variable.
const (
	maxMessage      = 1024
	maxHistoryBytes = 56 << 10
)

// Result is how a rollout ended.
type Result string

// Results of a rollout.
const (
	Succeeded Result = "succeeded"
	// FellBack: the hot canary failed, went back, and the full deployment
	// of the same release succeeded.
	FellBack Result = "fell back"
	Failed   Result = "failed"
)

// Entry is one rollout in a job's history.
type Entry struct {
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
	Source  string `json:"source"`
	// Path is how it went: hot, full, or "hot, then full" for a fallback.
	Path   string `json:"path"`
	Result Result `json:"result"`
	// Exhausted is set when the rollout failed on every path it had: hot
	// where the package had a relup path, then full. ship refuses such a
	// version until -force.
	Exhausted bool      `json:"exhausted,omitempty"`
	Message   string    `json:"message,omitempty"`
	Started   time.Time `json:"started"`
	Ended     time.Time `json:"ended"`
	// By is the name of the ACL token that ran it, when Nomad tells.
	By string `json:"by,omitempty"`
}

// History is a job's rollouts, kept in a Nomad Variable beside the job's
// other state, where `nomad var get` reads it too.
type History struct {
	Nomad     *nomad.Client
	Namespace string
	Job       string
}

// historyItem is the Variable item that holds the entries, as JSON.
const historyItem = "rollouts"

// Path is the Variable that holds the history.
func (h *History) Path() string { return "nomad/jobs/" + h.Job + "/beam-history" }

// Entries returns the history, oldest first.
func (h *History) Entries(ctx context.Context) ([]Entry, error) {
	v, _, err := h.read(ctx)
	if err != nil || v == nil {
		return nil, err
	}
	return decode(v)
}

func (h *History) read(ctx context.Context) (*nomad.Variable, uint64, error) {
	v, _, err := h.Nomad.Variables().Peek(h.Path(), (&nomad.QueryOptions{Namespace: h.Namespace}).WithContext(ctx))
	if err != nil {
		return nil, 0, fmt.Errorf("read variable %s: %w", h.Path(), err)
	}
	if v == nil {
		return nil, 0, nil
	}
	return v, v.ModifyIndex, nil
}

func decode(v *nomad.Variable) ([]Entry, error) {
	var out []Entry
	if raw := v.Items[historyItem]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &out); err != nil {
			return nil, fmt.Errorf("variable %s: item %s is not a rollout history: %w", v.Path, historyItem, err)
		}
	}
	return out, nil
}

// Add appends e, keeping the newest MaxHistory entries, with
// check-and-set so that concurrent rollouts do not lose each other's.
func (h *History) Add(ctx context.Context, e Entry) error {
	wo := (&nomad.WriteOptions{Namespace: h.Namespace}).WithContext(ctx)
	for attempt := 0; ; attempt++ {
		v, index, err := h.read(ctx)
		if err != nil {
			return err
		}
		var entries []Entry
		if v != nil {
			if entries, err = decode(v); err != nil {
				return err
			}
		}
		if len(e.Message) > maxMessage {
			e.Message = e.Message[:maxMessage] + "…"
		}
		entries = append(entries, e)
		if len(entries) > MaxHistory {
			entries = entries[len(entries)-MaxHistory:]
		}
		b, err := json.Marshal(entries)
		for err == nil && len(b) > maxHistoryBytes && len(entries) > 1 {
			entries = entries[1:]
			b, err = json.Marshal(entries)
		}
		if err != nil {
			return err
		}
		nv := &nomad.Variable{Namespace: h.Namespace, Path: h.Path(), Items: map[string]string{historyItem: string(b)}}
		if v == nil {
			_, _, err = h.Nomad.Variables().CheckedCreate(nv, wo)
		} else {
			nv.ModifyIndex = index
			_, _, err = h.Nomad.Variables().CheckedUpdate(nv, wo)
		}
		var conflict nomad.ErrCASConflict
		if errors.As(err, &conflict) && attempt < 10 {
			continue
		}
		if err != nil {
			return fmt.Errorf("write variable %s: %w", h.Path(), err)
		}
		return nil
	}
}

// Refused returns the newest entry that refuses shipping version with sum
// again: one that failed on every path it had. A later success of the
// same version lifts it.
func Refused(entries []Entry, version, sum string) *Entry {
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if e.Version != version || (sum != "" && e.SHA256 != "" && e.SHA256 != sum) {
			continue
		}
		if e.Result == Failed && e.Exhausted {
			return &entries[i]
		}
		if e.Result != Failed {
			return nil
		}
	}
	return nil
}

// String is the entry in one line, without control characters.
func (e Entry) String() string {
	s := fmt.Sprintf("%s  %-8s %-16s %-10s %s", e.Started.Local().Format("2006-01-02 15:04:05"), e.Version, e.Path, e.Result,
		e.Ended.Sub(e.Started).Round(time.Second))
	if e.By != "" {
		s += "  by " + e.By
	}
	if e.Message != "" {
		s += "\n    " + e.Message
	}
	return printable(s)
}

// printable replaces control characters but newlines and tabs: history
// entries and pointers come from whoever could write them.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || (r >= 0x20 && r != 0x7f && !(r >= 0x80 && r < 0xa0)) {
			return r
		}
		return '?'
	}, s)
}
