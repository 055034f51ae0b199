package hot

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// fakeNode answers each call with the next canned answer, as erl_call
// prints it, and keeps the expressions it was sent.
type fakeNode struct {
	answers []string
	err     error
	exprs   []string
}

func (f *fakeNode) Eval(_ context.Context, expr string) (string, error) {
	f.exprs = append(f.exprs, expr)
	if f.err != nil {
		return "", f.err
	}
	a := f.answers[0]
	f.answers = f.answers[1:]
	return a, nil
}

func TestReleases(t *testing.T) {
	cases := []struct {
		answer  string
		current string
		rels    string
	}{
		{`"ok [{0.2.0,current},{0.1.0,permanent},{current,0.2.0}]"`, "0.2.0", "0.2.0:current 0.1.0:permanent"},
		{`"ok [{0.1.0,permanent}]"`, "0.1.0", "0.1.0:permanent"},
		{`"ok [{0.2.0, unpacked}, {0.1.0, permanent}, {current, 0.1.0}]"`, "0.1.0", "0.2.0:unpacked 0.1.0:permanent"},
	}
	for _, tc := range cases {
		n := &Node{Eval: &fakeNode{answers: []string{tc.answer}}}
		cur, rels, err := n.Releases(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", tc.answer, err)
		}
		var got []string
		for _, r := range rels {
			got = append(got, r.Version+":"+r.Status)
		}
		if cur != tc.current || strings.Join(got, " ") != tc.rels {
			t.Errorf("%s: current %q, releases %q; want %q, %q", tc.answer, cur, got, tc.current, tc.rels)
		}
	}
}

func TestInstall(t *testing.T) {
	cases := []struct {
		name      string
		answer    string
		err       error
		restarted bool
		from      string
	}{
		{"ok", `"ok 0.1.0"`, nil, false, "0.1.0"},
		{"before the point of no return", `"error {no_such_release,0.9.0}"`, nil, false, ""},
		{"code_change", `"error {code_change_failed,counter,badarg}"`, nil, true, ""},
		{"node went down", `"error {down,noconnection}"`, nil, true, ""},
		{"timeout", `"error timeout"`, nil, true, ""},
		{"lost the node", "", errors.New("call into n@h: no answer within 1m"), true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeNode{answers: []string{tc.answer}, err: tc.err}
			from, err := (&Node{Eval: f}).Install(context.Background(), "0.2.0")
			if tc.from != "" {
				if err != nil || from != tc.from {
					t.Fatalf("Install = %q, %v; want %q", from, err, tc.from)
				}
				return
			}
			var ie *InstallError
			if !errors.As(err, &ie) {
				t.Fatalf("Install error %v is not an *InstallError", err)
			}
			if ie.Restarted != tc.restarted {
				t.Errorf("Restarted = %v, want %v (%v)", ie.Restarted, tc.restarted, err)
			}
			if !strings.Contains(f.exprs[0], `install_release("0.2.0", [{update_paths, true}])`) {
				t.Errorf("expression %q", f.exprs[0])
			}
		})
	}
}

func TestHealthy(t *testing.T) {
	cases := []struct {
		answers []string
		apps    []string
		err     string
	}{
		{[]string{`"ok [{0.2.0,current},{current,0.2.0}]"`, `"ok [hello, sasl, kernel]"`}, []string{"hello", "kernel"}, ""},
		{[]string{`"ok [{0.2.0,current},{current,0.2.0}]"`, `"ok [sasl,kernel]"`}, []string{"hello", "kernel"}, "not running: hello"},
		{[]string{`"ok [{0.1.0,permanent}]"`}, []string{"hello"}, "current release is 0.1.0, not 0.2.0"},
	}
	for _, tc := range cases {
		err := (&Node{Eval: &fakeNode{answers: tc.answers}}).Healthy(context.Background(), "0.2.0", tc.apps)
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Healthy = %v, want %q", err, tc.err)
		}
	}
}

func TestCallErrors(t *testing.T) {
	long := strings.Repeat("x", 2000)
	_, err := (&Node{Eval: &fakeNode{answers: []string{`"error ` + long + `"`}}}).CheckInstall(context.Background(), "1")
	var ce *CallError
	if !errors.As(err, &ce) || len(ce.Reason) > 510 {
		t.Errorf("a long reason is not cut: %d bytes", len(err.Error()))
	}
	_, err = (&Node{Eval: &fakeNode{answers: []string{`garbage`}}}).CheckInstall(context.Background(), "1")
	if err == nil || !strings.Contains(err.Error(), "unexpected answer") {
		t.Errorf("garbage answer: %v", err)
	}
}

func TestStatus(t *testing.T) {
	cases := []struct {
		answer, status, apps string
	}{
		{`"ok {{started,started},[kernel,stdlib,hello]}"`, "{started,started}", "kernel stdlib hello"},
		{`"ok {{starting, started}, [kernel]}"`, "{starting,started}", "kernel"},
		{`"ok {{stopping,started},[]}"`, "{stopping,started}", ""},
	}
	for _, tc := range cases {
		status, apps, err := (&Node{Eval: &fakeNode{answers: []string{tc.answer}}}).Status(context.Background())
		if err != nil || status != tc.status || strings.Join(apps, " ") != tc.apps {
			t.Errorf("%s: %q %q %v; want %q %q", tc.answer, status, apps, err, tc.status, tc.apps)
		}
	}
}

// TestCheckInstallOldProcesses: a soft_purge refusal says what it means.
func TestCheckInstallOldProcesses(t *testing.T) {
	_, err := (&Node{Eval: &fakeNode{answers: []string{`"error {old_processes,'Elixir.Shop.Acceptor'}"`}}}).CheckInstall(context.Background(), "2")
	if err == nil || !strings.Contains(err.Error(), "processes still run the old code of 'Elixir.Shop.Acceptor'") ||
		!strings.Contains(err.Error(), "nothing changed") {
		t.Errorf("got %v", err)
	}
}

func TestOldCode(t *testing.T) {
	mods, err := (&Node{Eval: &fakeNode{answers: []string{`"ok [a,'Elixir.B']"`}}}).OldCode(context.Background())
	if err != nil || strings.Join(mods, " ") != "a 'Elixir.B'" {
		t.Errorf("got %q, %v", mods, err)
	}
}
