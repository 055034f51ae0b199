//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestFetchFromStores deploys the example app from S3 (versitygw) and from
// GCS (fake-gcs-server), with the sha256 in the job or in a .sha256 object
// next to the tarball, and checks that a wrong sha256 and a missing object
// fail at once with events that say why.
func TestFetchFromStores(t *testing.T) {
	for _, store := range []string{"s3", "gs"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			name, body := releases.Padded(t, "hello_ex-0.1.0.tar.gz", 0)
			key := "dist/hello_ex/" + name
			put := stores.PutS3
			if store == "gs" {
				put = stores.PutGCS
			}
			if err := put(key, body); err != nil {
				t.Fatal(err)
			}
			if err := put(key+".sha256", []byte(sha(body)+"  "+name+"\n")); err != nil {
				t.Fatal(err)
			}
			src := fmt.Sprintf("%s://%s/%s", store, Bucket, key)

			t.Run("sha256 from the .sha256 object", func(t *testing.T) {
				j := runJob(t, "beam.nomad.hcl", uniqueJob(t, "src-"+store), map[string]string{
					"task": "hello_ex", "source": src, "sha256": "",
				})
				waitHTTP(t, j.port("http"), "/", 30*time.Second)
				ev := strings.Join(j.events("node"), "\n")
				if !strings.Contains(ev, "Fetching release from "+src) || !strings.Contains(ev, "sha256 "+sha(body)[:12]) {
					t.Errorf("events do not tell the fetch:\n%s", ev)
				}
			})

			t.Run("wrong sha256", func(t *testing.T) {
				wrong := strings.Repeat("ab", 32)
				j := submitJob(t, "beam.nomad.hcl", uniqueJob(t, "badsum-"+store), map[string]string{
					"task": "hello_ex", "source": src, "sha256": wrong,
				})
				j.Alloc = j.waitAlloc("failed", 2*time.Minute)
				ev := strings.Join(j.events("node"), "\n")
				for _, want := range []string{"sha256 mismatch", src, "expected " + wrong, "got " + sha(body)} {
					if !strings.Contains(ev, want) {
						t.Errorf("events lack %q:\n%s", want, ev)
					}
				}
			})

			t.Run("missing object", func(t *testing.T) {
				missing := fmt.Sprintf("%s://%s/dist/hello_ex/nope.tar.gz", store, Bucket)
				start := time.Now()
				j := submitJob(t, "beam.nomad.hcl", uniqueJob(t, "missing-"+store), map[string]string{
					"task": "hello_ex", "source": missing, "sha256": strings.Repeat("0", 64),
				})
				j.Alloc = j.waitAlloc("failed", 2*time.Minute)
				ev := strings.Join(j.events("node"), "\n")
				if !strings.Contains(ev, "does not exist") || strings.Contains(ev, "retrying") {
					t.Errorf("a missing object must fail at once, without retries:\n%s", ev)
				}
				// The retry window is 20 s: failing well within it shows
				// the 404 was not retried.
				if d := time.Since(start); d > 15*time.Second {
					t.Errorf("failing took %s", d)
				}
			})
		})
	}
}

// TestStoreOutage stops the S3 store: a task that starts while it is down
// gets it within the retry window once it is back, and a task whose store
// stays down fails after the window with an event that says so.
func TestStoreOutage(t *testing.T) {
	name, body := releases.Padded(t, "hello_erl-0.1.0.tar.gz", 0)
	key := "dist/hello_erl/" + name
	if err := stores.PutS3(key, body); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf("s3://%s/%s", Bucket, key)
	vars := map[string]string{"task": "hello_erl", "source": src, "sha256": sha(body)}
	t.Cleanup(func() { _ = stores.StartS3() })

	t.Run("down at start, back within the window", func(t *testing.T) {
		stores.StopS3()
		j := submitJob(t, "beam.nomad.hcl", uniqueJob(t, "outage"), vars)
		// The store comes back once an event has told of a retry, well
		// within the 20 s window: the SDK's own quick retries come first.
		err := waitFor(15*time.Second, func() error {
			allocs, _, err := cluster.NomadAPI.Jobs().Allocations(j.ID, false, nil)
			if err != nil || len(allocs) == 0 {
				return fmt.Errorf("not placed yet")
			}
			j.Alloc = allocs[0].ID
			if ev := strings.Join(j.events("node"), "\n"); !strings.Contains(ev, "retrying in") {
				return fmt.Errorf("no event tells of the retries:\n%s", ev)
			}
			return nil
		})
		if startErr := stores.StartS3(); startErr != nil {
			t.Fatal(startErr)
		}
		if err != nil {
			t.Fatal(err)
		}
		j.Alloc = j.waitAlloc("running", 2*time.Minute)
		waitHTTP(t, j.port("http"), "/", 30*time.Second)
	})

	t.Run("down for good", func(t *testing.T) {
		stores.StopS3()
		other, body2 := releases.Padded(t, "hello_erl-0.1.0.tar.gz", 0)
		j := submitJob(t, "beam.nomad.hcl", uniqueJob(t, "down"), map[string]string{
			"task": "hello_erl", "source": fmt.Sprintf("s3://%s/dist/hello_erl/%s", Bucket, other), "sha256": sha(body2),
		})
		j.Alloc = j.waitAlloc("failed", 2*time.Minute)
		ev := strings.Join(j.events("node"), "\n")
		if !strings.Contains(ev, "gave up after") || !strings.Contains(ev, "20s") {
			t.Errorf("the failure does not say it gave up after the retry window:\n%s", ev)
		}
		if strings.Contains(ev, stores.S3Secret) || strings.Contains(ev, stores.S3Key+":") {
			t.Errorf("credentials in events:\n%s", ev)
		}
	})
}

// TestOneDownloadPerNode places five allocations of one release on the
// node at once and checks that the store served the tarball once.
func TestOneDownloadPerNode(t *testing.T) {
	name, body := releases.Padded(t, "hello_ex-0.1.0.tar.gz", 1<<20)
	j := submitJob(t, "beam.nomad.hcl", uniqueJob(t, "once"), map[string]string{
		"task": "hello_ex", "source": releases.URL + "/" + name, "sha256": sha(body), "count": "5",
	})
	allocs := j.runningAllocs(5)
	for _, a := range allocs {
		waitHTTP(t, a.port("http"), "/health", 30*time.Second)
	}
	if n := releases.Gets(name); n != 1 {
		t.Fatalf("the store served the tarball %d times to 5 allocations on one node, want 1", n)
	}
	shared := 0
	for _, a := range allocs {
		ev := strings.Join(a.events("node"), "\n")
		if strings.Contains(ev, "downloaded once for this node") || strings.Contains(ev, "from the node's cache") {
			shared++
		}
	}
	if shared != 4 {
		t.Errorf("%d allocations say they used the shared download, want 4", shared)
	}
}

// TestFetchProgress fetches a 34 MB release from a store throttled to
// 100 Mbit/s, a download of a few seconds, and checks that task events
// show the bytes fetched against the total while it runs.
func TestFetchProgress(t *testing.T) {
	name, body := releases.Padded(t, "hello_erl-0.1.0.tar.gz", 30<<20)
	srv, err := serveThrottled(releases.dir, 100e6)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	j := runJob(t, "beam.nomad.hcl", uniqueJob(t, "progress"), map[string]string{
		"task": "hello_erl", "source": srv.URL + "/" + name, "sha256": sha(body),
	})
	var shown string
	for _, e := range j.events("node") {
		if strings.HasPrefix(e, "Fetching release: ") && strings.Contains(e, " of ") && strings.Contains(e, "%)") {
			shown = e
		}
	}
	if shown == "" {
		t.Fatalf("no progress event during a download of several seconds:\n%s", strings.Join(j.events("node"), "\n"))
	}
	if total := fmt.Sprintf("of %.1f MiB", float64(len(body))/(1<<20)); !strings.Contains(shown, total) {
		t.Errorf("progress %q does not show the total, %s", shown, total)
	}
}
