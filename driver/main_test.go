package driver

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/nomad/plugins/drivers"
	dtestutil "github.com/hashicorp/nomad/plugins/drivers/testutils"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/sandbox"
)

// The executor that the tests' driver starts re-executes the test binary,
// which must then be the sandbox, as the plugin binary is.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == sandbox.Command {
		sandbox.Main(os.Args[2:])
	}
	os.Exit(m.Run())
}

// mkAllocDir makes the task's allocation directory as the harness does,
// and lets the task's user (nobody, by default) reach it: the harness
// makes its root 0700, where a Nomad client's alloc_dir is 0711.
func mkAllocDir(t *testing.T, h *dtestutil.DriverHarness, cfg *drivers.TaskConfig, logs bool) func() {
	t.Helper()
	cleanup := h.MkAllocDir(cfg, logs)
	if err := os.Chmod(filepath.Dir(cfg.AllocDir), 0o711); err != nil {
		t.Fatal(err)
	}
	return cleanup
}
