package launch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
)

// PreCommand returns the process for one pre-command, an argv run against
// the unpacked release before the node starts. ["eval", EXPR] evaluates an
// expression in a fresh VM with the release's code loaded and its apps not
// started, the usual place for migrations:
//
//   - mix: bin/NAME eval EXPR, mix's own fresh-VM eval;
//   - relx: the release's erl with the start_clean boot, sys.config and
//     the libs of its .rel on the code path (relx's own eval would run on
//     the live node, which does not exist yet). libs names them, as
//     NAME-VSN, so that a root that holds several versions of an
//     application (after a hot upgrade) runs rel.Version's; nil puts every
//     lib on the path;
//   - shipment: the host's erl with every package's ebin on the path.
//
// Any other argv runs as given, from the release root.
func PreCommand(rel *release.Release, argv []string, libs []string) (string, []string, error) {
	if len(argv) == 0 || argv[0] == "" {
		return "", nil, fmt.Errorf("a pre-command is empty")
	}
	if argv[0] != "eval" {
		p := argv[0]
		if !filepath.IsAbs(p) {
			p = filepath.Join(rel.Root, p)
		}
		return p, argv[1:], nil
	}
	if len(argv) != 2 {
		return "", nil, fmt.Errorf(`pre-command %q: eval takes one expression, as ["eval", "MyApp.Release.migrate()"]`, release.Clip(strings.Join(argv, " ")))
	}
	expr := argv[1]
	if rel.Kind != release.Shipment {
		err := errors.Join(release.CheckName(rel.Root, "the release name", rel.Name),
			release.CheckName(rel.Root, "the release version", rel.Version))
		if rel.BundlesERTS {
			err = errors.Join(err, release.CheckName(rel.Root, "the ERTS version", rel.ERTS))
		}
		if err != nil {
			return "", nil, err
		}
	}
	switch rel.Kind {
	case release.Mix:
		return filepath.Join(rel.Root, "bin", rel.Name), []string{"eval", expr}, nil
	case release.Relx:
		erl := "erl"
		if rel.BundlesERTS {
			erl = filepath.Join(rel.Root, "erts-"+rel.ERTS, "bin", "erl")
		}
		vsn := filepath.Join(rel.Root, "releases", rel.Version)
		args := []string{"-noshell", "-noinput",
			"-boot", filepath.Join(vsn, "start_clean"),
			"-boot_var", "SYSTEM_LIB_DIR", filepath.Join(rel.Root, "lib"),
		}
		if _, err := os.Stat(filepath.Join(vsn, "sys.config")); err == nil {
			args = append(args, "-config", filepath.Join(vsn, "sys.config"))
		}
		args = append(args, "-pa")
		if libs == nil {
			args = append(args, ebins(rel.Root, "lib", "*", "ebin")...)
		}
		for _, l := range libs {
			args = append(args, filepath.Join(rel.Root, "lib", l, "ebin"))
		}
		return erl, append(args, "-eval", erlangEval(expr)), nil
	case release.Shipment:
		args := []string{"-noshell", "-noinput", "-pa"}
		args = append(args, ebins(rel.Root, "*", "ebin")...)
		return "erl", append(args, "-eval", erlangEval(expr)), nil
	}
	return "", nil, fmt.Errorf("eval is not supported for %s releases", rel.Kind)
}

// erlangEval wraps an Erlang expression so that the VM halts with 0 when it
// returns and with 1, after printing why, when it raises.
func erlangEval(expr string) string {
	expr = strings.TrimSuffix(strings.TrimSpace(expr), ".")
	return "try begin " + expr + " end of _ -> halt(0) catch C:R:S -> " +
		`io:format(standard_error, "~p: ~p~n~p~n", [C, R, S]), halt(1) end.`
}

func ebins(root string, pattern ...string) []string {
	m, _ := filepath.Glob(filepath.Join(append([]string{root}, pattern...)...))
	return m
}
