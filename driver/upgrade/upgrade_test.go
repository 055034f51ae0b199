package upgrade

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/hot"
	"github.com/nomad-driver-beam/nomad-driver-beam/hotspec"
)

// fakeNode is release_handler: each method records its call and fails if
// fail names it.
type fakeNode struct {
	calls []string
	fail  map[string]error
	// restarted makes a failing Install one that release_handler
	// survived by restarting the applications.
	restarted bool
	current   string
	oldCode   []string
}

func (n *fakeNode) call(name string, args ...any) error {
	n.calls = append(n.calls, strings.TrimSpace(fmt.Sprintln(append([]any{name}, args...)...)))
	return n.fail[name]
}

func (n *fakeNode) Releases(context.Context) (string, []hot.Release, error) {
	return n.current, nil, n.call("Releases")
}
func (n *fakeNode) Unpacked(_ context.Context, rel string) (string, error) {
	return "0.2.0", n.call("Unpacked", rel)
}
func (n *fakeNode) MergeRuntimeConfig(_ context.Context, v string) (bool, error) {
	return true, n.call("MergeRuntimeConfig", v)
}
func (n *fakeNode) CheckInstall(_ context.Context, v string) (string, error) {
	return "0.1.0", n.call("CheckInstall", v)
}
func (n *fakeNode) RunningApps(context.Context) ([]string, error) {
	return []string{"kernel", "app"}, n.call("RunningApps")
}
func (n *fakeNode) Install(_ context.Context, v string) (string, error) {
	err := n.call("Install", v)
	if err != nil && n.restarted && v != "0.1.0" {
		return "", &hot.InstallError{Version: v, Reason: "code_change_failed", Restarted: true}
	}
	if v == "0.1.0" && n.fail["InstallBack"] != nil {
		return "", n.fail["InstallBack"]
	}
	return "0.1.0", err
}
func (n *fakeNode) WaitStarted(context.Context) error { return n.call("WaitStarted") }
func (n *fakeNode) Healthy(_ context.Context, v string, apps []string) error {
	return n.call("Healthy", v, apps)
}
func (n *fakeNode) MakePermanent(_ context.Context, v string) error {
	return n.call("MakePermanent", v)
}
func (n *fakeNode) Remove(_ context.Context, v string) error { return n.call("Remove", v) }
func (n *fakeNode) OldCode(context.Context) ([]string, error) {
	return n.oldCode, n.call("OldCode")
}

// fakePkg is a release version; fakeTask the task with its record.
type fakePkg struct {
	task           *fakeTask
	upErr, downErr error
}

func (p *fakePkg) CheckUpgrade(name, from, erts string) error { return p.upErr }
func (p *fakePkg) CheckDowngrade(to string) error             { return p.downErr }
func (p *fakePkg) AppNames() []string {
	if p.task.apps != nil {
		return p.task.apps
	}
	return []string{"app", "extra"}
}
func (p *fakePkg) RelFileIn(root string) string { return root + "/releases/0.2.0/app.rel" }
func (p *fakePkg) Merge() (func(), error) {
	if err := p.task.fail["Merge"]; err != nil {
		return nil, err
	}
	p.task.merged = true
	return func() { p.task.merged = false }, nil
}
func (p *fakePkg) Join() error { p.task.joined = true; return nil }
func (p *fakePkg) Leave()      { p.task.joined = false }
func (p *fakePkg) Drop()       { p.task.dropped = true }

type fakeTask struct {
	fail                     map[string]error
	pkg                      *fakePkg
	merged, joined, dropped  bool
	version, permanent       string
	adopted                  string
	inspectErr, downgradeErr error
	// upgradeErr is CheckUpgrade's answer for an inspected version.
	upgradeErr error
	// apps are the applications of every version; nil means app, extra.
	apps []string
	// ran lists the pre-commands run, with the version; preCode is their
	// exit code.
	ran     []string
	preCode int
}

func (t *fakeTask) Stage(context.Context, hotspec.Target) (Staged, error) {
	if err := t.fail["Stage"]; err != nil {
		return nil, err
	}
	return t.pkg, nil
}
func (t *fakeTask) Inspect(v string) (Package, error) {
	if t.inspectErr != nil {
		return nil, t.inspectErr
	}
	return &fakePkg{task: t, upErr: t.upgradeErr, downErr: t.downgradeErr}, nil
}
func (t *fakeTask) SetVersion(v string)   { t.version = v }
func (t *fakeTask) SetPermanent(v string) { t.permanent = v }
func (t *fakeTask) Pid() int              { return 4242 }
func (t *fakeTask) Adopt(v string)        { t.adopted = v }
func (t *fakeTask) PreCommand(_ context.Context, v string, argv []string) (int, string, error) {
	t.ran = append(t.ran, v+": "+strings.Join(argv, " "))
	if !t.merged {
		return 0, "", errors.New("the new version's files are not on the node")
	}
	return t.preCode, "** (RuntimeError) migration 42 failed", t.fail["PreCommand"]
}

type run struct {
	node    *fakeNode
	task    *fakeTask
	reports []hotspec.Report
	msgs    []string
	warned  bool
}

func newRun(fail map[string]error) *run {
	r := &run{node: &fakeNode{fail: fail, current: "0.1.0"}, task: &fakeTask{fail: fail, version: "0.1.0"}}
	r.task.pkg = &fakePkg{task: r.task, upErr: fail["CheckUpgrade"]}
	return r
}

func (r *run) upgrade(mix bool) *Upgrade {
	return &Upgrade{Node: r.node, Task: r.task, Release: Release{Name: "app", ERTS: "15.0", Root: "/t/local/release", Mix: mix},
		Report: func(rep hotspec.Report, msg string) { r.reports = append(r.reports, rep); r.msgs = append(r.msgs, msg) },
		Key:    "0b0e7a4c-1111-2222-3333-444455556666", Variable: "nomad/jobs/shop/web/node",
		Warn: func(string, ...any) { r.warned = true }}
}

func (r *run) last() (hotspec.Report, string) {
	return r.reports[len(r.reports)-1], r.msgs[len(r.msgs)-1]
}

var target = hotspec.Target{Version: "0.2.0", Source: "s3://b/app-0.2.0.tar.gz"}

func TestUpgradeSucceeds(t *testing.T) {
	r := newRun(nil)
	o, err := r.upgrade(true).Run(context.Background(), target, "0.1.0", []hot.Release{{Version: "0.1.0", Status: "permanent"}})
	if o != hotspec.Succeeded || err != nil {
		t.Fatalf("outcome %s, %v", o, err)
	}
	want := []string{"Unpacked /t/local/release/releases/0.2.0/app.rel", "MergeRuntimeConfig 0.2.0", "CheckInstall 0.2.0",
		"RunningApps", "Install 0.2.0", "Healthy 0.2.0 [app]", "MakePermanent 0.2.0", "OldCode"}
	if !slices.Equal(r.node.calls, want) {
		t.Errorf("calls\n got %q\nwant %q", r.node.calls, want)
	}
	if _, msg := r.last(); strings.Contains(msg, "old code") {
		t.Errorf("old code reported with none left: %q", msg)
	}
	if r.task.version != "0.2.0" || r.task.permanent != "0.2.0" || !r.task.joined || !r.task.merged || !r.task.dropped {
		t.Errorf("task after success: %+v", r.task)
	}
	if r.reports[0].Outcome != hotspec.Started || !strings.Contains(r.msgs[0], "key 0b0e7a4c of nomad/jobs/shop/web/node") {
		t.Errorf("first report %+v %q", r.reports[0], r.msgs[0])
	}
	if rep, msg := r.last(); rep.From != "0.1.0" || rep.Version != "0.2.0" || !strings.Contains(msg, "same pid 4242") {
		t.Errorf("last report %+v %q", rep, msg)
	}
}

// TestPreCommands: a target's pre-commands run with the new code before
// release_handler is asked; a failing one refuses the upgrade, says which
// command, its exit code and its last output, and takes the files back.
func TestPreCommands(t *testing.T) {
	withPre := target
	withPre.PreCommands = [][]string{{"eval", "App.migrate()"}, {"bin/seed"}}
	r := newRun(nil)
	o, err := r.upgrade(true).Run(context.Background(), withPre, "0.1.0", []hot.Release{{Version: "0.1.0", Status: "permanent"}})
	if o != hotspec.Succeeded || err != nil {
		t.Fatalf("outcome %s, %v", o, err)
	}
	if strings.Join(r.task.ran, "; ") != "0.2.0: eval App.migrate(); 0.2.0: bin/seed" {
		t.Errorf("ran %q", r.task.ran)
	}
	if !slices.ContainsFunc(r.msgs, func(m string) bool { return strings.Contains(m, "running 2 pre-command(s) with 0.2.0's code") }) {
		t.Errorf("no event for the pre-commands: %q", r.msgs)
	}

	r = newRun(nil)
	r.task.preCode = 3
	o, err = r.upgrade(true).Run(context.Background(), withPre, "0.1.0", []hot.Release{{Version: "0.1.0", Status: "permanent"}})
	if o != hotspec.Refused || err == nil {
		t.Fatalf("outcome %s, %v", o, err)
	}
	rep, msg := r.last()
	if rep.Stage != hotspec.StagePreCommand {
		t.Errorf("refusal stage %q, want %q", rep.Stage, hotspec.StagePreCommand)
	}
	for _, want := range []string{"pre-command 1/2 (eval App.migrate()) failed with exit code 3", "migration 42 failed", "node untouched"} {
		if !strings.Contains(msg, want) {
			t.Errorf("refusal %q lacks %q", msg, want)
		}
	}
	if len(r.task.ran) != 1 || slices.ContainsFunc(r.node.calls, func(c string) bool { return strings.HasPrefix(c, "CheckInstall") || strings.HasPrefix(c, "Unpacked") }) {
		t.Errorf("went on after the failed pre-command: ran %q, node calls %q", r.task.ran, r.node.calls)
	}
	if r.task.merged || r.task.joined {
		t.Errorf("the files stayed after the failed pre-command: %+v", r.task)
	}
}

// TestUpgradeReportsOldCode: a soft_purge that kept old code is reported
// with the success, since it blocks the next upgrade of those modules.
func TestUpgradeReportsOldCode(t *testing.T) {
	r := newRun(nil)
	r.node.oldCode = []string{"'Elixir.Shop.Acceptor'"}
	o, err := r.upgrade(true).Run(context.Background(), target, "0.1.0", []hot.Release{{Version: "0.1.0", Status: "permanent"}})
	if o != hotspec.Succeeded || err != nil {
		t.Fatalf("outcome %s, %v", o, err)
	}
	if _, msg := r.last(); !strings.Contains(msg, "the old code of 'Elixir.Shop.Acceptor' is still loaded (soft_purge kept it") {
		t.Errorf("success does not report the old code: %q", msg)
	}
}

// TestUpgradeRefusedUntouched: every failure before install_release is a
// refusal that leaves nothing behind: no merged files, no record, no
// unpacked release on the node.
func TestUpgradeRefusedUntouched(t *testing.T) {
	boom := errors.New("boom")
	for _, step := range []string{"Stage", "CheckUpgrade", "Merge", "Unpacked", "MergeRuntimeConfig", "CheckInstall", "RunningApps"} {
		t.Run(step, func(t *testing.T) {
			r := newRun(map[string]error{step: boom})
			o, err := r.upgrade(true).Run(context.Background(), target, "0.1.0", nil)
			if o != hotspec.Refused || !errors.Is(err, boom) {
				t.Fatalf("outcome %s, %v", o, err)
			}
			if rep, msg := r.last(); rep.Outcome != hotspec.Refused || !strings.Contains(msg, "node untouched") {
				t.Errorf("report %+v %q", rep, msg)
			}
			// Once release_handler has unpacked the release, removing
			// it takes its files out; before, the unmerge does.
			unpacked := slices.Contains(r.node.calls, "Unpacked /t/local/release/releases/0.2.0/app.rel") && step != "Unpacked"
			removed := slices.Contains(r.node.calls, "Remove 0.2.0")
			if removed != unpacked {
				t.Errorf("release unpacked %v but removed %v: %q", unpacked, removed, r.node.calls)
			}
			if (r.task.merged && !removed) || r.task.joined || r.task.version != "0.1.0" {
				t.Errorf("left behind: %+v", r.task)
			}
			if slices.Contains(r.node.calls, "Install 0.2.0") {
				t.Error("installed after a refusal")
			}
		})
	}
}

func TestUpgradeNeedsSource(t *testing.T) {
	r := newRun(nil)
	o, err := r.upgrade(false).Run(context.Background(), hotspec.Target{Version: "0.2.0"}, "0.1.0", nil)
	if o != hotspec.Refused || err == nil || !strings.Contains(err.Error(), "no source") {
		t.Fatalf("%s %v", o, err)
	}
}

func TestInstallFails(t *testing.T) {
	boom := errors.New("noproc")
	t.Run("node unchanged", func(t *testing.T) {
		r := newRun(map[string]error{"Install": boom})
		o, err := r.upgrade(false).Run(context.Background(), target, "0.1.0", nil)
		if o != hotspec.Failed || !errors.Is(err, boom) {
			t.Fatalf("%s %v", o, err)
		}
		if _, msg := r.last(); !strings.Contains(msg, "the node still runs 0.1.0") {
			t.Errorf("message %q", msg)
		}
		if !slices.Contains(r.node.calls, "Remove 0.2.0") || r.task.joined || r.task.version != "0.1.0" {
			t.Errorf("not undone: %q %+v", r.node.calls, r.task)
		}
	})
	t.Run("applications restarted", func(t *testing.T) {
		r := newRun(map[string]error{"Install": boom})
		r.node.restarted = true
		o, _ := r.upgrade(false).Run(context.Background(), target, "0.1.0", nil)
		if _, msg := r.last(); o != hotspec.Failed || !strings.Contains(msg, "restarted the applications into 0.1.0") {
			t.Errorf("%s %q", o, msg)
		}
		if !slices.Contains(r.node.calls, "WaitStarted") || !slices.Contains(r.node.calls, "Remove 0.2.0") {
			t.Errorf("calls %q", r.node.calls)
		}
	})
	t.Run("node did not come back", func(t *testing.T) {
		r := newRun(map[string]error{"Install": boom, "WaitStarted": errors.New("timeout")})
		r.node.restarted = true
		r.upgrade(false).Run(context.Background(), target, "0.1.0", nil)
		if _, msg := r.last(); !strings.Contains(msg, "did not come back") {
			t.Errorf("%q", msg)
		}
	})
}

func TestUnhealthyGoesBack(t *testing.T) {
	sick := errors.New("app not running")
	r := newRun(map[string]error{"Healthy": sick})
	o, err := r.upgrade(false).Run(context.Background(), target, "0.1.0", nil)
	if o != hotspec.Failed || !errors.Is(err, sick) {
		t.Fatalf("%s %v", o, err)
	}
	if !slices.Contains(r.node.calls, "Install 0.1.0") || !slices.Contains(r.node.calls, "Remove 0.2.0") {
		t.Errorf("did not go back and remove: %q", r.node.calls)
	}
	if _, msg := r.last(); !strings.Contains(msg, "went back to 0.1.0") || r.task.permanent != "" {
		t.Errorf("%q %+v", msg, r.task)
	}

	r = newRun(map[string]error{"Healthy": sick, "InstallBack": errors.New("stuck")})
	r.upgrade(false).Run(context.Background(), target, "0.1.0", nil)
	if _, msg := r.last(); !strings.Contains(msg, "going back failed: stuck") {
		t.Errorf("%q", msg)
	}
}

func TestNotPermanent(t *testing.T) {
	r := newRun(map[string]error{"MakePermanent": errors.New("disk full")})
	o, _ := r.upgrade(false).Run(context.Background(), target, "0.1.0", nil)
	if o != hotspec.Failed || r.task.version != "0.2.0" || r.task.permanent != "" {
		t.Fatalf("%s %+v", o, r.task)
	}
	if slices.Contains(r.node.calls, "Remove 0.2.0") || !r.task.joined {
		t.Errorf("a live version was taken back: %q %+v", r.node.calls, r.task)
	}
}

func TestRemoveFailureIsWarned(t *testing.T) {
	r := newRun(map[string]error{"CheckInstall": errors.New("bad relup"), "Remove": errors.New("gone")})
	r.upgrade(false).Run(context.Background(), target, "0.1.0", nil)
	if !r.warned {
		t.Error("a failed undo was not warned about")
	}
	// release_handler still lists the version, so the record keeps it.
	if !r.task.joined {
		t.Error("a release the node still holds left the record")
	}
}

// A version on the node whose relup upgrades from the running one goes up,
// as release_handler looks it up first, though the running release has no
// way down to it: the re-run after a plugin restart that followed
// set_unpacked, or up again after going back. Nothing is merged or
// unpacked again, and no pre-command runs twice.
func TestInstalledVersionGoesUp(t *testing.T) {
	rels := []hot.Release{{Version: "0.2.0", Status: "unpacked"}, {Version: "0.1.0", Status: "permanent"}}
	r := newRun(nil)
	r.task.downgradeErr = errors.New("release 0.1.0 has no relup")
	tg := target
	tg.PreCommands = [][]string{{"eval", "migrate()"}}
	o, err := r.upgrade(false).Run(context.Background(), tg, "0.1.0", rels)
	if o != hotspec.Succeeded || err != nil {
		t.Fatalf("%s %v %q", o, err, r.node.calls)
	}
	if r.task.merged || len(r.task.ran) != 0 || slices.ContainsFunc(r.node.calls, func(c string) bool { return strings.HasPrefix(c, "Unpacked") }) {
		t.Errorf("merged %v, pre-commands %q, calls %q", r.task.merged, r.task.ran, r.node.calls)
	}
}

func TestDowngradeOfInstalledVersion(t *testing.T) {
	rels := []hot.Release{{Version: "0.2.0", Status: "old"}, {Version: "0.1.0", Status: "permanent"}}
	r := newRun(nil)
	o, err := r.upgrade(false).Run(context.Background(), target, "0.1.0", rels)
	if o != hotspec.Succeeded || err != nil || slices.Contains(r.node.calls, "Unpacked /t/local/release/releases/0.2.0/app.rel") {
		t.Fatalf("%s %v %q", o, err, r.node.calls)
	}
	if !strings.Contains(r.msgs[0], "the version is on the node") {
		t.Errorf("%q", r.msgs[0])
	}
	for _, c := range []struct {
		name string
		set  func(*fakeTask)
	}{
		{"unreadable", func(t *fakeTask) { t.inspectErr = errors.New("no tree") }},
		{"no down path", func(t *fakeTask) {
			t.upgradeErr, t.downgradeErr = errors.New("no relup up"), errors.New("no relup down")
		}},
	} {
		r := newRun(nil)
		c.set(r.task)
		if o, _ := r.upgrade(false).Run(context.Background(), target, "0.1.0", rels); o != hotspec.Refused {
			t.Errorf("%s: %s", c.name, o)
		}
	}
}

func TestFinish(t *testing.T) {
	r := newRun(nil)
	if err := r.upgrade(false).Finish(context.Background(), "0.2.0"); err != nil || r.task.permanent != "0.2.0" {
		t.Fatalf("%v %+v", err, r.task)
	}
	if rep, msg := r.last(); rep.Outcome != hotspec.Succeeded || !strings.Contains(msg, "after an interruption") {
		t.Errorf("%+v %q", rep, msg)
	}
	r = newRun(map[string]error{"Healthy": errors.New("sick")})
	if err := r.upgrade(false).Finish(context.Background(), "0.2.0"); err == nil || r.task.permanent != "" {
		t.Fatalf("%v %+v", err, r.task)
	}
	if rep, _ := r.last(); rep.Outcome != hotspec.Failed {
		t.Errorf("%+v", rep)
	}
}
