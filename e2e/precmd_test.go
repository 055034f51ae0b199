//go:build e2e

package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestPreCommands runs `eval` pre-commands (the migration hook) before the
// node starts, for mix and relx releases, and checks that a failing one
// keeps the node from starting and says why.
func TestPreCommands(t *testing.T) {
	cases := []struct {
		name, tarball, task string
		pre                 string // an HCL list of argv lists
		ok                  bool
		logs                string // in stdout (ok) or in the failure event
	}{
		{
			name: "mix", tarball: "hello_ex-0.1.0.tar.gz", task: "hello_ex", ok: true,
			pre:  `[["eval", "Application.load(:hello_ex); IO.puts(\"migrated hello_ex #{Application.spec(:hello_ex, :vsn)}\")"]]`,
			logs: "migrated hello_ex 0.1.0",
		},
		{
			name: "relx", tarball: "hello_erl-0.1.0.tar.gz", task: "hello_erl", ok: true,
			pre:  `[["eval", "ok = application:load(hello_erl), {ok, V} = application:get_key(hello_erl, vsn), io:format(\"migrated hello_erl ~s~n\", [V])"]]`,
			logs: "migrated hello_erl 0.1.0",
		},
		{
			name: "mix failing", tarball: "hello_ex-0.1.0.tar.gz", task: "hello_ex",
			pre:  `[["eval", "IO.puts(\"step one\")"], ["eval", "raise \"migration failed: boom\""]]`,
			logs: "migration failed: boom",
		},
		{
			name: "relx failing", tarball: "hello_erl-0.1.0.tar.gz", task: "hello_erl",
			pre:  `[["eval", "error(migration_boom)"]]`,
			logs: "migration_boom",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j := submitJob(t, "beam.nomad.hcl", uniqueJob(t, "pre"), map[string]string{
				"task":         tc.task,
				"source":       releases.URL + "/" + tc.tarball,
				"sha256":       releases.SHA256(t, tc.tarball),
				"pre_commands": tc.pre,
			})
			if tc.ok {
				j.Alloc = j.waitAlloc("running", 3*time.Minute)
				out := j.waitLogs("node", " booted")
				mig, boot := strings.Index(out, tc.logs), strings.Index(out, " booted")
				if mig < 0 || mig > boot {
					t.Fatalf("pre-command output %q is not in the logs before the boot line:\n%s", tc.logs, out)
				}
				if ev := strings.Join(j.events("node"), "\n"); !strings.Contains(ev, "Finished pre-command 1/1") {
					t.Errorf("no event for the pre-command:\n%s", ev)
				}
				return
			}
			j.Alloc = j.waitAlloc("failed", 3*time.Minute)
			ev := strings.Join(j.events("node"), "\n")
			for _, want := range []string{"Failed pre-command", "exit code 1", tc.logs, "the node was not started"} {
				if !strings.Contains(ev, want) {
					t.Errorf("failure events lack %q:\n%s", want, ev)
				}
			}
			out, _ := cluster.Nomad("alloc", "logs", j.Alloc, "node")
			if strings.Contains(out, " booted") {
				t.Errorf("the node booted although a pre-command failed:\n%s", out)
			}
		})
	}
}
