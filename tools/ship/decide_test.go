package ship

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/relup"
	"github.com/nomad-driver-beam/nomad-driver-beam/tools/rollout"
)

// pkg is release shop 1.4.3 whose relup goes up from 1.4.2, and from 1.4.1
// with an emulator restart.
func pkg(t *testing.T) *Package {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "releases", "1.4.3")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"shop.rel": `{release,{"shop","1.4.3"},{erts,"13.1.5"},[{kernel,"8.5.3"},{stdlib,"4.2"},{sasl,"4.2"},{shop,"1.4.3"}]}.`,
		"relup": `{"1.4.3",[{"1.4.2",[],[point_of_no_return]},{"1.4.1",[],[restart_new_emulator]}],` +
			`[{"1.4.2",[],[point_of_no_return]}]}.`,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := relup.InspectVersion(root, "shop", "1.4.3")
	if err != nil {
		t.Fatal(err)
	}
	return &Package{Name: "shop", Version: "1.4.3", Kind: "mix", Relup: r, SHA256: "ab"}
}

func allocs(versions ...string) []rollout.Alloc {
	var out []rollout.Alloc
	for i, v := range versions {
		out = append(out, rollout.Alloc{ID: string(rune('a'+i)) + "1234567-0000", Index: i, Version: v, Release: "shop"})
	}
	return out
}

func TestDecide(t *testing.T) {
	p := pkg(t)
	for _, tc := range []struct {
		name     string
		versions []string
		path     Path
		reason   string
	}{
		{"all up from 1.4.2", []string{"1.4.2", "1.4.2", "1.4.2"}, Hot, "hot: relup 1.4.2→1.4.3 for all 3 allocations"},
		{"one already there", []string{"1.4.3", "1.4.2"}, Hot, "hot: relup 1.4.2→1.4.3 for 1 allocation(s); 1 already run 1.4.3"},
		{"no path", []string{"1.4.2", "1.3.9"}, Full, "full: allocation b1234567[1] runs 1.3.9: release 1.4.3 has no upgrade path from 1.3.9"},
		{"emulator restart", []string{"1.4.1"}, Full, "restarts the emulator"},
		{"no allocations", nil, Full, "full: the job has no running allocations"},
		{"current", []string{"1.4.3"}, Hot, "nothing to do"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(p, allocs(tc.versions...))
			if d.Path != tc.path || !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("got %s %q, want %s %q", d.Path, d.Reason, tc.path, tc.reason)
			}
		})
	}
	other := allocs("1.4.2")
	other[0].ERTS = "14.0"
	if d := Decide(p, other); d.Path != Full || !strings.Contains(d.Reason, "needs erts 13.1.5 but the node runs erts 14.0") {
		t.Errorf("another ERTS: %+v", d)
	}
	if d := Decide(&Package{Name: "g", Version: "1", Kind: "shipment"}, allocs("0")); d.Path != Full || !strings.Contains(d.Reason, "shipment") {
		t.Errorf("a shipment: %+v", d)
	}
	full := Decide(p, allocs("1.3.9"))
	if _, err := Force(full, Hot); err == nil || !strings.Contains(err.Error(), "-hot: allocation a1234567[0] runs 1.3.9") {
		t.Errorf("forcing hot: %v", err)
	}
	if d, err := Force(Decide(p, allocs("1.4.2")), Full); err != nil || d.Path != Full {
		t.Errorf("forcing full: %+v %v", d, err)
	}
}

func TestRefused(t *testing.T) {
	at := time.Unix(1e9, 0)
	failedAll := Entry{Version: "2", SHA256: "s", Result: Failed, Exhausted: true, Ended: at}
	failedHot := Entry{Version: "2", SHA256: "s", Result: Failed}
	ok := Entry{Version: "2", SHA256: "s", Result: Succeeded}
	for _, tc := range []struct {
		name    string
		entries []Entry
		sum     string
		refused bool
	}{
		{"failed everywhere", []Entry{failedAll}, "s", true},
		{"failed hot only (no fallback)", []Entry{failedHot}, "s", false},
		{"a later success lifts it", []Entry{failedAll, ok}, "s", false},
		{"another build of the version", []Entry{failedAll}, "other", false},
		{"another version", []Entry{{Version: "3", Result: Failed, Exhausted: true}}, "s", false},
	} {
		if got := Refused(tc.entries, "2", tc.sum) != nil; got != tc.refused {
			t.Errorf("%s: refused %v, want %v", tc.name, got, tc.refused)
		}
	}
	msg := (&RefusedError{Entry: Entry{Version: "2", SHA256: strings.Repeat("a", 64), Path: "full", Message: "deployment failed", Ended: at}}).Error()
	if !strings.Contains(msg, "pass -force") || !strings.Contains(msg, "deployment failed") {
		t.Errorf("refusal %q", msg)
	}
}
