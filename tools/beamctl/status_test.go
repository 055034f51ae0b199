package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/nomad-driver-beam/nomad-driver-beam/tools/rollout"
)

func TestWriteStatus(t *testing.T) {
	var b bytes.Buffer
	writeStatus(&b, []rollout.Status{
		{Alloc: "0b0e7a4c-1111", Name: "hello.web[0]", Node: "hello-0b0e7a4c@10.0.0.1", Client: "client-1",
			Base: "0.1.0", Hot: "0.2.0", Health: "passing", Restarts: 1, Uptime: 90 * time.Minute,
			LastDeploy: "hot", LastResult: "succeeded 0.2.0", Peers: []string{"hello-9f@10.0.0.2"}},
		{Alloc: "9f", Name: "hello.web[1]", Health: "none"},
	})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and two rows:\n%s", b.String())
	}
	for _, want := range []string{"0b0e7a4c ", "hello-0b0e7a4c@10.0.0.1", "0.1.0", "0.2.0", "passing", "1h30m0s", "hot (succeeded 0.2.0)", "1 (hello-9f@10.0.0.2)"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row %q lacks %q", lines[1], want)
		}
	}
	if f := strings.Fields(lines[2]); len(f) != 11 || f[2] != "-" || f[10] != "0" {
		t.Errorf("empty fields must print as -: %q", lines[2])
	}
	// Columns line up: every row starts its NAME where the header does.
	col := strings.Index(lines[0], "NAME")
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l[col:], "hello.web[") {
			t.Errorf("misaligned row %q", l)
		}
	}
}

func TestRunUsage(t *testing.T) {
	cases := []struct {
		args []string
		code int
		out  string
	}{
		{nil, exitUsage, "Usage: beamctl"},
		{[]string{"nope"}, exitUsage, `unknown command "nope"`},
		{[]string{"upgrade", "-job", "x"}, exitUsage, "missing -version"},
		{[]string{"status"}, exitUsage, "missing -job"},
		{[]string{"upgrade", "-help"}, exitOK, "Example:"},
		{[]string{"status", "-help"}, exitOK, "Example:"},
	}
	for _, tc := range cases {
		var out, errb bytes.Buffer
		if code := run(tc.args, &out, &errb); code != tc.code {
			t.Errorf("%v: exit %d, want %d", tc.args, code, tc.code)
		}
		if got := out.String() + errb.String(); !strings.Contains(got, tc.out) {
			t.Errorf("%v: output %q lacks %q", tc.args, got, tc.out)
		}
	}
}
