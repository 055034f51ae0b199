//go:build e2e

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"
)

// The trust-boundary suite, part 3: a release's own names that lead out of
// its tree, hard links that multiply when the tree is copied, sources
// that another namespace owns or that point into the client, and task
// files swapped for links. Each case ends with an event that says why,
// and no host file read, no disk filled, no request made.

var teams sync.Once

// teamNamespaces creates the namespaces team-a and team-b, once.
func teamNamespaces(t *testing.T) {
	t.Helper()
	teams.Do(func() {
		for _, ns := range []string{"team-a", "team-b"} {
			if _, err := cluster.NomadAPI.Namespaces().Register(&nomadapi.Namespace{Name: ns}, nil); err != nil {
				t.Fatalf("namespace %s: %v", ns, err)
			}
		}
	})
}

// nsJob is a job of source.nomad.hcl in a namespace.
type nsJob struct{ ns, id string }

func submitIn(t *testing.T, ns, prefix string, vars map[string]string) *nsJob {
	t.Helper()
	j := &nsJob{ns: ns, id: uniqueJob(t, prefix)}
	args := []string{"job", "run", "-detach", "-var", "job=" + j.id, "-var", "namespace=" + ns}
	for k, v := range vars {
		args = append(args, "-var", k+"="+v)
	}
	args = append(args, filepath.Join(cluster.Root, "e2e", "testdata", "source.nomad.hcl"))
	if out, err := cluster.Nomad(args...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = cluster.Nomad("job", "stop", "-purge", "-namespace", ns, j.id) })
	return j
}

// wait returns the job's allocation once its client status is status.
func (j *nsJob) wait(t *testing.T, status string) *nomadapi.Allocation {
	t.Helper()
	var out *nomadapi.Allocation
	err := waitFor(3*time.Minute, func() error {
		allocs, _, err := cluster.NomadAPI.Jobs().Allocations(j.id, false, &nomadapi.QueryOptions{Namespace: j.ns})
		if err != nil {
			return err
		}
		for _, a := range allocs {
			if a.ClientStatus == status {
				out, _, err = cluster.NomadAPI.Allocations().Info(a.ID, &nomadapi.QueryOptions{Namespace: j.ns})
				return err
			}
			if a.ClientStatus == "failed" {
				return permanent{fmt.Errorf("allocation %s failed", a.ID)}
			}
		}
		return fmt.Errorf("no %s allocation yet", status)
	})
	if err != nil {
		t.Fatalf("job %s/%s: %v", j.ns, j.id, err)
	}
	return out
}

// events returns the node task's event messages.
func nodeEvents(a *nomadapi.Allocation) string {
	var msgs []string
	if st := taskState(a, "node"); st != nil {
		for _, e := range st.Events {
			msgs = append(msgs, e.Type+": "+e.DisplayMessage)
		}
	}
	return strings.Join(msgs, "\n")
}

// TestTrustReleaseVersionEscape: start_erl.data names a version that
// climbs out of the tree to a directory the test planted as root, where a
// .rel makes the version look real and vm.args is a link to the victim.
// The driver must refuse the version where it reads it, whatever exists
// at the path it names, and copy nothing of the victim anywhere.
func TestTrustReleaseVersionEscape(t *testing.T) {
	v := newVictim(t)
	plant, err := os.MkdirTemp("", "beam-plant-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(plant) })
	if err := os.MkdirAll(filepath.Join(plant, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(plant, "x", "hostile.rel"),
		[]byte(`{release,{"hostile","0.1.0"},{erts,"13.1.5"},[]}.`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"vm.args", "vm.args.src", "remote.vm.args"} {
		if err := os.Symlink(v.path, filepath.Join(plant, "x", f)); err != nil {
			t.Fatal(err)
		}
	}
	escape := strings.Repeat("../", 40) + strings.TrimPrefix(plant, "/") + "/x"
	script := "#!/bin/sh\necho started\ncat \"$VMARGS_PATH\"\nexit 1\n"
	entries := append(relxTree("hostile", script, false), tfile("releases/start_erl.data", "13.1.5 "+escape+"\n"))
	srv := newHostileServer(t)
	body := tarGz(t, entries...)
	src := srv.add("escape.tar.gz", body)
	j := submitHostile(t, "escape", map[string]string{"task": "hostile", "source": src, "sha256": sha(body), "restarts": "1"})
	eventWith(t, j, "releases/start_erl.data: the release version", "is not a valid name")
	v.check(t)
	v.checkUnquoted(t, j)
}

// TestTrustHardLinkBomb: one 1 MiB file and 600 hard links to it, a tiny
// tarball, against the e2e config's max_unpacked_mb = 512. Charged at
// nothing, each link became a full file in the task's copy (the review
// grew an allocation directory to 2.4 GiB this way). It must be refused at
// unpack, and leave neither the allocation nor the cache any larger.
func TestTrustHardLinkBomb(t *testing.T) {
	entries := append(relxTree("hostile", "#!/bin/sh\nexit 1\n", true), tdir("lib"), tfile("lib/big", strings.Repeat("\x00", 1<<20)))
	for i := range 600 {
		entries = append(entries, thardlink(fmt.Sprintf("lib/l%03d", i), "lib/big"))
	}
	body := tarGz(t, entries...)
	if len(body) > 64<<10 {
		t.Fatalf("the bomb is %d bytes compressed", len(body))
	}
	srv := newHostileServer(t)
	src := srv.add("links.tar.gz", body)
	j := submitHostile(t, "hardlinks", map[string]string{"task": "hostile", "source": src, "sha256": sha(body)})
	eventWith(t, j, "counting each hard link as a copy", "refusing a possible hard-link bomb (the plugin's max_unpacked_mb)")

	alloc := filepath.Join(cluster.Dir, "nomad", "alloc", j.Alloc)
	if n := treeBytes(alloc); n > 8<<20 {
		t.Errorf("the allocation directory holds %d bytes", n)
	}
	cache := filepath.Join(cluster.Dir, "beam", "cache")
	_ = filepath.WalkDir(cache, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && strings.HasPrefix(d.Name(), sha(body)+".d") {
			t.Errorf("a tree of the bomb is left in the cache: %s, %d bytes", p, treeBytes(p))
			return filepath.SkipDir
		}
		return nil
	})
}

// TestTrustSourcePolicy: team-b may fetch only s3://releases/team-b/. A
// team-b job naming team-a's release, with its sha256, and one naming a
// loopback listener, are refused before any request, with an event that
// names the policy; the listener sees no connection. team-a fetches its
// own release as before.
func TestTrustSourcePolicy(t *testing.T) {
	teamNamespaces(t)
	name, body := releases.Padded(t, "hello_ex-0.1.0.tar.gz", 0)
	key := "team-a/hello_ex/" + name
	if err := stores.PutS3(key, body); err != nil {
		t.Fatal(err)
	}
	if err := stores.PutS3(key+".sha256", []byte(sha(body)+"  "+name+"\n")); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf("s3://%s/%s", Bucket, key)
	listener := newConnCounter(t)
	loop := fmt.Sprintf("http://127.0.0.1:%d/releases/app.tar.gz", listener.port())

	t.Run("team-a fetches its own release", func(t *testing.T) {
		t.Parallel()
		j := submitIn(t, "team-a", "own", map[string]string{"task": "hello_ex", "source": src, "sha256": ""})
		a := j.wait(t, "running")
		if ev := nodeEvents(a); !strings.Contains(ev, "sha256 "+sha(body)[:12]) {
			t.Errorf("events:\n%s", ev)
		}
	})
	for _, tc := range []struct{ name, source, sum string }{
		{"team-b names team-a's bucket", src, sha(body)},
		{"team-b names team-a's bucket, sha256 from the sidecar", src, ""},
		{"team-b names a loopback listener", loop, strings.Repeat("ab", 32)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j := submitIn(t, "team-b", "other", map[string]string{"task": "hello_ex", "source": tc.source, "sha256": tc.sum})
			a := j.wait(t, "failed")
			ev := nodeEvents(a)
			want := fmt.Sprintf(`Fetch refused: release.source %s is outside the plugin's source policy, sources { namespace "team-b" }, `+
				"which allows s3://%s/team-b/", tc.source, Bucket)
			if !strings.Contains(ev, want) {
				t.Errorf("no event %q:\n%s", want, ev)
			}
			if strings.Contains(ev, "Fetching release") {
				t.Errorf("the driver fetched:\n%s", ev)
			}
		})
	}
	t.Cleanup(func() {
		if c := listener.accepted(); len(c) > 0 {
			t.Errorf("the loopback listener got %d connections: %v", len(c), c)
		}
	})
}

// TestTrustTaskFileLinks: a running node (nobody) swaps a file the driver
// reads as root on the next start, its cookie_file or its tls.key_file,
// for a link to a root-only file in its own private/ (the test plants it
// there, as Nomad plants a Vault token), and exits. On the restart the
// driver must refuse the link with an event that says so, and copy the
// private file nowhere the task can read.
func TestTrustTaskFileLinks(t *testing.T) {
	allowTraversal(t)
	tls := newPKI(t, "links")
	for _, tc := range []struct{ name, file, pattern, field string }{
		{"cookie_file", "erlang.cookie", "erl.*ie", "cookie_file"},
		{"tls.key_file", "dist.key", "dist[.]key", "tls.key_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := newVictim(t)
			// The file is named by a pattern: the driver refuses a script
			// that names the cookie file outright.
			script := fmt.Sprintf(`#!/bin/sh
S="$NOMAD_SECRETS_DIR"
F=$(cd "$S" && ls | grep -x '%[1]s')
echo "hostile started as $(id -un)"
sleep 4
if rm -f "$S/$F" && ln -s ../private/token "$S/$F"; then echo "planted $F"; fi
exit 1
`, tc.pattern)
			srv := newHostileServer(t)
			body := tarGz(t, relxTree("hostile", script, true)...)
			src := srv.add("swap.tar.gz", body)
			vars := map[string]string{"task": "hostile", "source": src, "sha256": sha(body), "user": "nobody", "restarts": "1"}
			secrets := map[string]string{}
			if tc.file == "dist.key" {
				vars["tls"] = "true"
				secrets = map[string]string{"tls_cert": tls.certPEM, "tls_key": tls.keyPEM, "tls_ca": tls.caPEM}
			}
			j := submitJobWith(t, "hostile.nomad.hcl", uniqueJob(t, "swap"), vars, secrets)
			j.Alloc = j.waitAlloc("running", 3*time.Minute)
			private := filepath.Join(cluster.Dir, "nomad", "alloc", j.Alloc, "node", "private", "token")
			if err := os.WriteFile(private, []byte(v.content), 0o600); err != nil {
				t.Fatal(err)
			}
			j.Alloc = j.waitAlloc("failed", 3*time.Minute)
			out, _ := cluster.Nomad("alloc", "logs", j.Alloc, "node")
			if !strings.Contains(out, "planted "+tc.file) {
				t.Fatalf("the task did not plant its link; stdout:\n%s", out)
			}
			eventWith(t, j, tc.field, "is or passes through a link, which the driver does not follow in the task directory")
			v.checkUnquoted(t, j)
			beam := filepath.Join(cluster.Dir, "nomad", "alloc", j.Alloc, "node", "secrets", "beam")
			_ = filepath.WalkDir(beam, func(p string, d os.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					if b, _ := os.ReadFile(p); strings.Contains(string(b), v.content) {
						t.Errorf("%s holds the private file's content", p)
					}
				}
				return nil
			})
		})
	}
}

// TestTrustFetchWithJobIdentity: a task with aws_identity fetches its S3
// release with its own role: the plugin reads the task's workload
// identity token (Nomad's JWT for this job) and sends it to STS. With the
// role STS maps to the store's credentials the task runs; with a role the
// store does not know, the fetch is refused, which shows that the
// client's own credentials were not used.
func TestTrustFetchWithJobIdentity(t *testing.T) {
	teamNamespaces(t)
	name, body := releases.Padded(t, "hello_ex-0.1.0.tar.gz", 0)
	key := "team-a/identity/" + name
	if err := stores.PutS3(key, body); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf("s3://%s/%s", Bucket, key)
	claims := func(tok string) map[string]any {
		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			t.Fatalf("STS got %q, not a JWT", tok)
		}
		b, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		var c map[string]any
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		return c
	}

	t.Run("the role the store knows", func(t *testing.T) {
		j := submitIn(t, "team-a", "idrole", map[string]string{"task": "hello_ex", "source": src, "sha256": sha(body), "aws_role": RootRole})
		j.wait(t, "running")
		var found bool
		for _, tok := range stores.STS.Tokens(RootRole) {
			c := claims(tok)
			if c["nomad_job_id"] == j.id && c["nomad_namespace"] == "team-a" {
				found = true
			}
		}
		if !found {
			t.Errorf("STS got no token of job %s", j.id)
		}
	})
	t.Run("a role the store does not know", func(t *testing.T) {
		role := "arn:aws:iam::123456789012:role/beam-e2e-other"
		j := submitIn(t, "team-a", "idother", map[string]string{"task": "hello_ex", "source": src, "sha256": sha(body), "aws_role": role})
		a := j.wait(t, "failed")
		ev := nodeEvents(a)
		// versitygw answers a HEAD signed with a key it does not know
		// with 404 or 403 (a HEAD has no body to say which): either way
		// the store refused the role's credentials, where the client's
		// would have read the object.
		if !strings.Contains(ev, "Fetch failed: fetch "+src) || strings.Contains(ev, "Started") {
			t.Errorf("events:\n%s", ev)
		}
		if len(stores.STS.Tokens(role)) == 0 {
			t.Error("STS got no token for the role")
		}
		for _, tok := range stores.STS.Tokens(role) {
			if strings.Contains(ev, tok) || strings.Contains(pluginLog(t), tok) {
				t.Error("the token shows in the events or the plugin log")
			}
		}
	})
}
