// Package sandbox starts a task's processes inside the task: as its user,
// with no supplementary group the user does not have, in its cgroups, and,
// with Landlock, seeing only the task's directories and read-only system
// paths.
//
// The executor runs the plugin's own binary as the sandbox command (see
// Command), as root, with the driver's Spec on its command line. The
// sandbox joins the cgroups, reads the task's environment from a file only
// root can read, drops to the task's user, restricts itself and then execs
// the program in place: the program keeps the sandbox's pid, so signals
// from the executor reach it.
//
// Nothing the sandbox does as root depends on what the task controls: its
// arguments come from the driver, the environment file lives in the
// plugin's data_dir, and the working directory is entered after the drop.
package sandbox

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Command is the first argument that makes the plugin binary the sandbox.
const Command = "beam-sandbox"

// Spec says how to start one program inside a task.
type Spec struct {
	// UID, GID and Groups are the credentials to run as. Root (UID 0)
	// keeps its credentials but still drops every supplementary group it
	// was not given.
	UID, GID uint32
	Groups   []uint32
	// Landlock restricts the program to ReadOnly (read and execute) and
	// ReadWrite paths. Off, the program sees the whole host, as raw_exec.
	Landlock  bool
	ReadOnly  []string
	ReadWrite []string
	// Cgroups are cgroup directories to join before anything else. The
	// universal executor puts only the node itself in the task's cgroups
	// on cgroups v1; calls made into the task later join them here.
	Cgroups []string
	// EnvFile holds the program's environment, NUL-separated, in a file
	// only root can read; Env is added after it.
	EnvFile string
	Env     []string
	// Dir is the working directory, entered as the task's user.
	Dir string
	// Relay runs the program as a child rather than in place, and ends
	// as soon as it does, whatever it left running (see relay): for calls
	// whose caller waits for their output to end.
	Relay bool
	// Argv is the program and its arguments. A name without a slash is
	// looked up in the PATH of the program's environment.
	Argv []string
}

// Args returns the sandbox's command line for spec, less the binary: the
// executor runs the plugin binary with these arguments.
func (s Spec) Args() []string {
	a := []string{Command,
		"-uid", strconv.FormatUint(uint64(s.UID), 10),
		"-gid", strconv.FormatUint(uint64(s.GID), 10)}
	if len(s.Groups) > 0 {
		g := make([]string, len(s.Groups))
		for i, id := range s.Groups {
			g[i] = strconv.FormatUint(uint64(id), 10)
		}
		a = append(a, "-groups", strings.Join(g, ","))
	}
	if s.Landlock {
		a = append(a, "-landlock")
	}
	for _, p := range s.ReadOnly {
		a = append(a, "-ro", p)
	}
	for _, p := range s.ReadWrite {
		a = append(a, "-rw", p)
	}
	for _, p := range s.Cgroups {
		a = append(a, "-cgroup", p)
	}
	if s.EnvFile != "" {
		a = append(a, "-env-file", s.EnvFile)
	}
	for _, e := range s.Env {
		a = append(a, "-env", e)
	}
	if s.Dir != "" {
		a = append(a, "-dir", s.Dir)
	}
	if s.Relay {
		a = append(a, "-relay")
	}
	return append(append(a, "--"), s.Argv...)
}

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

// Parse reads a Spec from the arguments that follow Command.
func Parse(args []string) (Spec, error) {
	var (
		s          Spec
		uid, gid   uint64
		groups     string
		ro, rw, cg list
		env        list
	)
	fs := flag.NewFlagSet(Command, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Uint64Var(&uid, "uid", 0, "")
	fs.Uint64Var(&gid, "gid", 0, "")
	fs.StringVar(&groups, "groups", "", "")
	fs.BoolVar(&s.Landlock, "landlock", false, "")
	fs.Var(&ro, "ro", "")
	fs.Var(&rw, "rw", "")
	fs.Var(&cg, "cgroup", "")
	fs.StringVar(&s.EnvFile, "env-file", "", "")
	fs.Var(&env, "env", "")
	fs.StringVar(&s.Dir, "dir", "", "")
	fs.BoolVar(&s.Relay, "relay", false, "")
	if err := fs.Parse(args); err != nil {
		return Spec{}, err
	}
	if uid > 1<<32-2 || gid > 1<<32-2 {
		return Spec{}, fmt.Errorf("uid or gid out of range")
	}
	s.UID, s.GID = uint32(uid), uint32(gid)
	if groups != "" {
		for _, g := range strings.Split(groups, ",") {
			id, err := strconv.ParseUint(g, 10, 32)
			if err != nil {
				return Spec{}, fmt.Errorf("-groups: %q is not a group id", g)
			}
			s.Groups = append(s.Groups, uint32(id))
		}
	}
	s.ReadOnly, s.ReadWrite, s.Cgroups, s.Env = ro, rw, cg, env
	s.Argv = fs.Args()
	if len(s.Argv) == 0 {
		return Spec{}, fmt.Errorf("no program to run")
	}
	return s, nil
}
