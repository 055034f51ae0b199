package upgrade

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/hot"
	"github.com/nomad-driver-beam/nomad-driver-beam/hotspec"
)

type fakeJournal struct {
	failed  []string
	records []hotspec.Outcome
}

func (j *fakeJournal) Failed(raw string) bool { return slices.Contains(j.failed, raw) }
func (j *fakeJournal) Record(raw, from, to string, o hotspec.Outcome, err error) {
	j.records = append(j.records, o)
	if err != nil {
		j.failed = append(j.failed, raw)
	}
}

// releasesNode is a fakeNode whose Releases answers as given.
type releasesNode struct {
	*fakeNode
	rels []hot.Release
	err  error
}

func (n *releasesNode) Releases(context.Context) (string, []hot.Release, error) {
	n.calls = append(n.calls, "Releases")
	return n.current, n.rels, n.err
}

func TestConverge(t *testing.T) {
	good := target.Encode()
	cases := []struct {
		name    string
		raw     string
		setup   func(*Upgrade, *releasesNode, *fakeJournal)
		retry   bool
		outcome hotspec.Outcome // recorded; "" for none
		check   func(*testing.T, *run, *releasesNode)
	}{
		{name: "already failed", raw: good, setup: func(_ *Upgrade, _ *releasesNode, j *fakeJournal) { j.failed = []string{good} }},
		{name: "not JSON", raw: "0.2.0", outcome: hotspec.Invalid},
		{name: "vetted out", raw: good, outcome: hotspec.Invalid,
			setup: func(u *Upgrade, _ *releasesNode, _ *fakeJournal) {
				u.Check = func(hotspec.Target) error { return errors.New("ftp") }
			}},
		{name: "no channel", raw: good, outcome: hotspec.Refused,
			setup: func(u *Upgrade, _ *releasesNode, _ *fakeJournal) { u.Refuse = errors.New("no erl_call") }},
		{name: "no release_handler", raw: good, outcome: hotspec.Refused,
			setup: func(_ *Upgrade, n *releasesNode, _ *fakeJournal) { n.err = &hot.CallError{Reason: "undef"} }},
		{name: "release_handler not up yet", raw: good, retry: true,
			setup: func(u *Upgrade, n *releasesNode, _ *fakeJournal) {
				n.err = &hot.CallError{Reason: "noproc"}
				u.Task.(*fakeTask).apps = []string{"kernel", "stdlib", "sasl", "app"}
			}},
		{name: "booting", raw: good, retry: true,
			setup: func(_ *Upgrade, n *releasesNode, _ *fakeJournal) { n.err = errors.New("nodedown") }},
		{name: "upgrade", raw: good, outcome: hotspec.Succeeded,
			check: func(t *testing.T, r *run, n *releasesNode) {
				if !slices.Contains(n.calls, "Install 0.2.0") {
					t.Errorf("no install: %q", n.calls)
				}
			}},
		{name: "current", raw: good, outcome: hotspec.Current,
			setup: func(_ *Upgrade, n *releasesNode, _ *fakeJournal) {
				n.current, n.rels = "0.2.0", []hot.Release{{Version: "0.2.0", Status: "permanent"}}
			},
			check: func(t *testing.T, r *run, _ *releasesNode) {
				if r.task.adopted != "0.2.0" || r.task.version != "0.2.0" {
					t.Errorf("task %+v", r.task)
				}
			}},
		{name: "interrupted", raw: good, outcome: hotspec.Succeeded,
			setup: func(_ *Upgrade, n *releasesNode, _ *fakeJournal) {
				n.current, n.rels = "0.2.0", []hot.Release{{Version: "0.2.0", Status: "current"}}
			},
			check: func(t *testing.T, r *run, n *releasesNode) {
				if r.task.permanent != "0.2.0" || !slices.Contains(n.calls, "MakePermanent 0.2.0") {
					t.Errorf("not finished: %q %+v", n.calls, r.task)
				}
			}},
		{name: "interrupted and sick", raw: good, outcome: hotspec.Failed,
			setup: func(_ *Upgrade, n *releasesNode, _ *fakeJournal) {
				n.current, n.rels = "0.2.0", []hot.Release{{Version: "0.2.0", Status: "current"}}
				n.fail = map[string]error{"Healthy": errors.New("sick")}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRun(nil)
			n := &releasesNode{fakeNode: r.node}
			u := r.upgrade(false)
			u.Node = n
			j := &fakeJournal{}
			if c.setup != nil {
				c.setup(u, n, j)
			}
			recorded := len(j.records)
			if retry := u.Converge(context.Background(), c.raw, "0.1.0", j); retry != c.retry {
				t.Fatalf("retry %v", retry)
			}
			got := j.records[recorded:]
			switch {
			case c.outcome == "" && len(got) != 0:
				t.Errorf("recorded %v, want nothing", got)
			case c.outcome != "" && (len(got) != 1 || got[0] != c.outcome):
				t.Errorf("recorded %v, want %s; messages %q", got, c.outcome, r.msgs)
			}
			if c.outcome == hotspec.Refused && !strings.Contains(strings.Join(r.msgs, "\n"), "node untouched") {
				t.Errorf("messages %q", r.msgs)
			}
			if c.check != nil {
				c.check(t, r, n)
			}
		})
	}
}
