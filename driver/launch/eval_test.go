package launch

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
)

// TestPreCommandRelxLibs: after a hot upgrade the root holds two versions
// of an application; the eval gets only those of the version named.
func TestPreCommandRelxLibs(t *testing.T) {
	root := t.TempDir()
	for _, l := range []string{"shop-0.9.0", "shop-0.10.0", "stdlib-4.2"} {
		if err := os.MkdirAll(filepath.Join(root, "lib", l, "ebin"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rel := &release.Release{Root: root, Name: "shop", Version: "0.10.0", Kind: release.Relx, ERTS: "13.1.5"}
	_, args, err := PreCommand(rel, []string{"eval", "shop:migrate()"}, []string{"stdlib-4.2", "shop-0.10.0"})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.Index(args, "-pa")
	want := []string{filepath.Join(root, "lib", "stdlib-4.2", "ebin"), filepath.Join(root, "lib", "shop-0.10.0", "ebin"), "-eval"}
	if i < 0 || !slices.Equal(args[i+1:i+4], want) {
		t.Errorf("code path %q, want %q", args[i+1:], want)
	}
	// Without names, every lib.
	_, args, _ = PreCommand(rel, []string{"eval", "x"}, nil)
	if !slices.Contains(args, filepath.Join(root, "lib", "shop-0.9.0", "ebin")) {
		t.Errorf("without names: %q", args)
	}
	mix := &release.Release{Root: root, Name: "shop", Version: "0.10.0", Kind: release.Mix}
	if path, args, _ := PreCommand(mix, []string{"eval", "Shop.migrate()"}, nil); path != filepath.Join(root, "bin", "shop") || !slices.Equal(args, []string{"eval", "Shop.migrate()"}) {
		t.Errorf("mix: %s %q", path, args)
	}
}
