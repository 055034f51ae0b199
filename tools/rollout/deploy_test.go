package rollout

import (
	"reflect"
	"strings"
	"testing"
	"time"

	nomad "github.com/hashicorp/nomad/api"
)

func TestGroupLines(t *testing.T) {
	d := &nomad.Deployment{TaskGroups: map[string]*nomad.DeploymentState{
		"web":    {DesiredTotal: 3, PlacedAllocs: 2, HealthyAllocs: 1, DesiredCanaries: 1, PlacedCanaries: []string{"a"}, Promoted: true},
		"worker": {DesiredTotal: 1, PlacedAllocs: 1, UnhealthyAllocs: 1},
	}}
	want := []string{
		"web: 2/3 placed, 1 healthy, 0 unhealthy, canaries 1/1 (promoted)",
		"worker: 1/1 placed, 0 healthy, 1 unhealthy",
	}
	if got := groupLines(d); !reflect.DeepEqual(got, want) {
		t.Errorf("groupLines = %q, want %q", got, want)
	}
}

func TestReleaseSources(t *testing.T) {
	name, web, side := "web", "app", "sidecar"
	job := &nomad.Job{TaskGroups: []*nomad.TaskGroup{{Name: &name, Tasks: []*nomad.Task{
		{Name: web, Driver: "beam", Config: map[string]any{"release": []any{map[string]any{"source": "s3://b/app-1.tar.gz"}}}},
		{Name: side, Driver: "docker", Config: map[string]any{"image": "envoy"}},
	}}}}
	got := ReleaseSources(job)
	if len(got) != 1 || got["web/app"] != "s3://b/app-1.tar.gz" {
		t.Errorf("ReleaseSources = %v", got)
	}
	if len(ReleaseSources(nil)) != 0 {
		t.Error("a job that does not exist yet has no sources")
	}
}

func TestReleaseCommand(t *testing.T) {
	cases := []struct {
		r    ReleaseInfo
		expr string
		want []string
	}{
		{ReleaseInfo{Name: "shop", Kind: "mix"}, "", []string{"bin/shop", "remote"}},
		{ReleaseInfo{Name: "shop", Kind: "mix"}, "Node.list()", []string{"bin/shop", "rpc", "IO.inspect(Node.list())"}},
		{ReleaseInfo{Name: "api", Kind: "relx"}, "", []string{"bin/api", "remote_console"}},
		{ReleaseInfo{Name: "api", Kind: "relx"}, "nodes().", []string{"bin/api", "eval", "nodes()."}},
	}
	for _, tc := range cases {
		got, err := tc.r.Command(tc.expr)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%+v %q: %q, %v; want %q", tc.r, tc.expr, got, err, tc.want)
		}
	}
	for _, k := range []string{"shipment", ""} {
		if _, err := (ReleaseInfo{Name: "x", Kind: k}).Command(""); err == nil {
			t.Errorf("kind %q: no error", k)
		}
	}
}

func TestGates(t *testing.T) {
	str := func(s string) *string { return &s }
	dur := func(d time.Duration) *time.Duration { return &d }
	web := &nomad.TaskGroup{Name: str("web"), Services: []*nomad.Service{{Name: "web", Checks: []nomad.ServiceCheck{{Type: "http"}}}}}
	worker := &nomad.TaskGroup{Name: str("worker"), Services: []*nomad.Service{{Name: "dist"}},
		Tasks:  []*nomad.Task{{Services: []*nomad.Service{{Provider: "nomad", Checks: []nomad.ServiceCheck{{Type: "http"}}}}}},
		Update: &nomad.UpdateStrategy{MinHealthyTime: dur(5 * time.Second)}}
	if !HasChecks(web) || HasChecks(worker) {
		t.Errorf("HasChecks: web %v, worker %v (a nomad-provider check is not a Consul check)", HasChecks(web), HasChecks(worker))
	}
	g := DeployGate(&nomad.Job{TaskGroups: []*nomad.TaskGroup{web, worker}})
	for _, want := range []string{"web: its Consul checks pass and its tasks run for 10s", "worker: its tasks run for 5s (no Consul checks"} {
		if !strings.Contains(g, want) {
			t.Errorf("gate %q lacks %q", g, want)
		}
	}
	if n := (&Nomad{}); !strings.HasPrefix(n.Gate(), "BEAM health") {
		t.Errorf("gate without checks: %q", n.Gate())
	}
}
