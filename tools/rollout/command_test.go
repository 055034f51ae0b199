package rollout

import (
	"slices"
	"testing"
)

func TestCommand(t *testing.T) {
	for in, want := range map[string][]string{
		`eval MyApp.Release.migrate()`:       {"eval", "MyApp.Release.migrate()"},
		`eval  "quoted" stays   as written `: {"eval", `"quoted" stays   as written`},
		`bin/seed --all`:                     {"bin/seed", "--all"},
		`bin/x 'a b' "c \"d\"" e\ f`:         {"bin/x", "a b", `c "d"`, "e f"},
		`bin/x $HOME *.txt`:                  {"bin/x", "$HOME", "*.txt"},
		`bin/x ''`:                           {"bin/x", ""},
	} {
		got, err := Command(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Command(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{``, `   `, `eval  `, `bin/x 'open`, `bin/x "open`, `bin/x \`} {
		if got, err := Command(bad); err == nil {
			t.Errorf("Command(%q) = %q, want an error", bad, got)
		}
	}
}
