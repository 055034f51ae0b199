package driver

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/control"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
)

// controlClient returns the channel into the task's node: erl_call, or a
// client VM under TLS distribution, with the node's own HOME, where the
// cookie is.
//
// Calls run inside the task, through its executor and the sandbox: as the
// task's user, confined like the node, in its cgroups and its network
// namespace, from the task's own copy of the release. Nothing of the
// release is ever run as root by the plugin.
func (d *Driver) controlClient(h *taskHandle, st *taskState) (*control.Client, error) {
	if st.Node == "" {
		return nil, fmt.Errorf("distribution is off for this task (no dist_port)")
	}
	pcfg, _ := d.cfg()
	cfg := h.taskConfig
	box, err := d.sandboxFor(cfg)
	if err != nil {
		return nil, err
	}
	box.Cgroups = joinCgroups(cfg)
	tree := st.ReleaseRoot
	home, sslOpt := st.Home, st.SSLDistOptFile
	// The task's copy is the task's to change: what it holds is looked
	// up in the plugin's own trees, and only the path is the copy's.
	own := st.Trees
	erlCall := filepath.Join(tree, "erts-"+st.ERTS, "bin", "erl_call")
	if !release.ValidName(st.ERTS) || !inTrees(own, path.Join("erts-"+st.ERTS, "bin", "erl_call")) {
		p, lerr := lookPathNear(d.host.probe(d.ctx).Path, "erl_call")
		if lerr != nil {
			return nil, fmt.Errorf("no erl_call in the release's erts nor on the host")
		}
		erlCall = p
	}
	c := &control.Client{
		ERLCall: erlCall,
		Node:    st.Node,
		Env:     []string{"HOME=" + home, "ERL_EPMD_PORT=" + strconv.Itoa(pcfg.EPMDPort), "PATH=" + os.Getenv("PATH")},
		Dir:     home,
		Timeout: 10 * time.Second,
		Run: func(ctx context.Context, argv, env []string, dir string, stdin []byte) ([]byte, []byte, int, error) {
			s := box
			s.Argv, s.Env, s.Dir = argv, env, dir
			// A call ends with its program, whatever that left running.
			s.Relay = true
			return runInside(ctx, h.exec, s, stdin)
		},
	}
	if bridged(cfg) && st.DistInside > 0 {
		c.Address = "127.0.0.1:" + strconv.Itoa(st.DistInside)
	}
	if sslOpt != "" {
		c.SSLDistOptFile = sslOpt
		c.ERL = filepath.Join(filepath.Dir(erlCall), "erl")
		lib := filepath.Join(tree, "lib")
		c.VMArgs = []string{
			"-boot", filepath.Join(tree, "releases", st.ReleaseVersion, "start_clean"),
			"-boot_var", "RELEASE_LIB", lib, "-boot_var", "SYSTEM_LIB_DIR", lib,
			"-pa",
		}
		for _, app := range libApps(own) {
			c.VMArgs = append(c.VMArgs, filepath.Join(lib, app, "ebin"))
		}
	}
	return c, nil
}

// inTrees reports whether the slash path name exists beneath any of the
// release roots in trees, resolved through an os.Root on each.
func inTrees(trees map[string]string, name string) bool {
	for _, root := range trees {
		if _, err := release.StatIn(root, name); err == nil {
			return true
		}
	}
	return false
}

// libApps returns the NAME-VSN directories under lib/ in any of the
// release roots in trees, sorted and without duplicates.
func libApps(trees map[string]string) []string {
	seen := map[string]bool{}
	for _, root := range trees {
		ents, _ := os.ReadDir(filepath.Join(root, "lib"))
		for _, e := range ents {
			if release.ValidName(e.Name()) && e.IsDir() {
				seen[e.Name()] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// lookPathNear finds a program next to the host's erl, where OTP installs
// erl_call under lib/erl_interface-*/bin when not in bin/.
func lookPathNear(erl, prog string) (string, error) {
	if erl == "" {
		return "", os.ErrNotExist
	}
	real, err := filepath.EvalSymlinks(erl)
	if err != nil {
		return "", err
	}
	root := filepath.Dir(filepath.Dir(real))
	for _, pattern := range []string{
		filepath.Join(filepath.Dir(real), prog),
		filepath.Join(root, "erts-*", "bin", prog),
		filepath.Join(root, "lib", "erl_interface-*", "bin", prog),
	} {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			return m[len(m)-1], nil
		}
	}
	return "", os.ErrNotExist
}
