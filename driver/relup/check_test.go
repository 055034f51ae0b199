package relup

import (
	"errors"
	"testing"
)

// entry returns a relup entry for vsn with the given instructions.
func entry(vsn, instrs string) string {
	return `{"` + vsn + `",[],[` + instrs + `]}`
}

// inspectFake inspects release hello at vsn 0.3.0 with relup as its relup.
func inspectFake(t *testing.T, relup string) *Package {
	t.Helper()
	p, err := Inspect(writeTree(t, release("0.3.0", relup)), "")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckUpgrade(t *testing.T) {
	const code = "{load_object_code,{hello,\"0.3.0\",[hello_srv]}},point_of_no_return,{load,{hello_srv,brutal_purge,brutal_purge}}"
	up := func(entries ...string) string { return relupFor("0.3.0", entries, nil) }
	tests := []struct {
		name                 string
		relup                string
		runningName, running string
		erts                 string
		wantErr              error
		wantMsg              string
	}{
		{"ok", up(entry("0.2.0", code)), "hello", "0.2.0", "13.1.5", nil, ""},
		{"ok among several", up(entry("0.1.0", code), entry("0.2.0", code)), "hello", "0.1.0", "13.1.5", nil, ""},
		{"ok from char list", up(`{[48,46,50,46,48],[],[]}`), "hello", "0.2.0", "13.1.5", nil, ""},
		{"restart nested in apply", up(entry("0.2.0", "{apply,{m,f,[restart_emulator]}}")), "hello", "0.2.0", "13.1.5", nil, ""},
		{"other release", up(entry("0.2.0", code)), "other", "0.2.0", "13.1.5", ErrOtherRelease,
			"release hello 0.3.0 cannot hot-upgrade a node that runs release other: a hot upgrade keeps the release name; deploy it as a full release"},
		{"same version", up(entry("0.2.0", code)), "hello", "0.3.0", "13.1.5", ErrSameVersion,
			"release hello 0.3.0 is already running on the node: there is nothing to upgrade"},
		{"emulator change", up(entry("0.2.0", code)), "hello", "0.2.0", "12.3", ErrEmulatorChange,
			"release 0.3.0 needs erts 13.1.5 but the node runs erts 12.3: an emulator change needs a full deploy"},
		{"no relup", "", "hello", "0.2.0", "13.1.5", ErrNoRelup,
			"release 0.3.0 has no relup (releases/0.3.0/relup); build one (rebar3 relup, or systools:make_relup in a mix release step) or deploy it as a full release"},
		{"no path", up(entry("0.2.0", code)), "hello", "0.1.0", "13.1.5", ErrNoPath,
			"release 0.3.0 has no upgrade path from 0.1.0: its relup upgrades only from 0.2.0; deploy it as a full release, or upgrade to 0.2.0 first"},
		{"no path among several", up(entry("0.2.0", code), entry("0.1.5", code)), "hello", "0.1.0", "13.1.5", ErrNoPath,
			"release 0.3.0 has no upgrade path from 0.1.0: its relup upgrades only from 0.1.5, 0.2.0; deploy it as a full release, or upgrade to one of those first"},
		{"no up entries", up(), "hello", "0.2.0", "13.1.5", ErrNoPath,
			"release 0.3.0 has no upgrade path from 0.2.0: its relup lists no versions; deploy it as a full release"},
		{"pattern", up(entry(`0\\.2\\..*`, code)), "hello", "0.2.7", "13.1.5", ErrNoPath,
			`release 0.3.0 has no upgrade path from 0.2.7: its relup lists "0\\.2\\..*", which matches 0.2.7 only as a pattern, and release_handler compares versions literally; rebuild the relup for 0.2.7 or deploy it as a full release`},
		{"pattern not matching", up(entry(`0\\.2\\..*`, code)), "hello", "0.1.0", "13.1.5", ErrNoPath,
			`release 0.3.0 has no upgrade path from 0.1.0: its relup upgrades only from 0\.2\..*; deploy it as a full release, or upgrade to 0\.2\..* first`},
		{"restart_new_emulator", up(entry("0.2.0", "restart_new_emulator,"+code)), "hello", "0.2.0", "13.1.5", ErrRestartsEmulator,
			"release 0.3.0's relup from 0.2.0 restarts the emulator (restart_new_emulator): deploy it as a full release"},
		{"restart_emulator", up(entry("0.1.0", code), entry("0.2.0", code+",restart_emulator")), "hello", "0.2.0", "13.1.5", ErrRestartsEmulator,
			"release 0.3.0's relup from 0.2.0 restarts the emulator (restart_emulator): deploy it as a full release"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := inspectFake(t, tt.relup)
			err := p.CheckUpgrade(tt.runningName, tt.running, tt.erts)
			checkErr(t, err, tt.wantErr, tt.wantMsg)
		})
	}
}

func TestCheckDowngrade(t *testing.T) {
	down := func(entries ...string) string { return relupFor("0.3.0", nil, entries) }
	tests := []struct {
		name    string
		relup   string
		to      string
		wantErr error
		wantMsg string
	}{
		{"ok", down(entry("0.2.0", "point_of_no_return")), "0.2.0", nil, ""},
		{"same version", down(entry("0.2.0", "")), "0.3.0", ErrSameVersion,
			"release hello 0.3.0 is already running on the node: there is nothing to downgrade"},
		{"no relup", "", "0.2.0", ErrNoRelup,
			"release 0.3.0 has no relup (releases/0.3.0/relup), so a node cannot go back from it to 0.2.0 in place; deploy 0.2.0 as a full release"},
		{"no path", down(entry("0.2.0", ""), entry("0.2.1", "")), "0.1.0", ErrNoPath,
			"release 0.3.0 has no downgrade path to 0.1.0: its relup downgrades only to 0.2.0, 0.2.1; deploy 0.1.0 as a full release"},
		{"upgrade entry only", relupFor("0.3.0", []string{entry("0.1.0", "")}, nil), "0.1.0", ErrNoPath,
			"release 0.3.0 has no downgrade path to 0.1.0: its relup lists no versions; deploy 0.1.0 as a full release"},
		{"restart", down(entry("0.2.0", "point_of_no_return,restart_emulator")), "0.2.0", ErrRestartsEmulator,
			"release 0.3.0's relup to 0.2.0 restarts the emulator (restart_emulator): deploy 0.2.0 as a full release"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := inspectFake(t, tt.relup)
			checkErr(t, p.CheckDowngrade(tt.to), tt.wantErr, tt.wantMsg)
		})
	}
}

func checkErr(t *testing.T, err, wantErr error, wantMsg string) {
	t.Helper()
	if wantErr == nil {
		if err != nil {
			t.Errorf("got error %q, want nil", err)
		}
		return
	}
	if !errors.Is(err, wantErr) {
		t.Errorf("got error %v, want one matching %v", err, wantErr)
	}
	if err != nil && err.Error() != wantMsg {
		t.Errorf("error message\n got %s\nwant %s", err, wantMsg)
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"0.1.0", "0.1.0", 0},
		{"0.9.0", "0.10.0", -1},
		{"1.0.0", "0.99.99", 1},
		{"1.0", "1.0.1", -1},
		{"1.0.0-rc1", "1.0.0-rc2", -1},
		{"1.0.0-rc10", "1.0.0-rc9", 1},
		{"01", "1", 1},
		{"1a", "1b", -1},
		{"a", "1", 1},
		{"", "0", -1},
	}
	for _, tt := range tests {
		got := compareVersions(tt.a, tt.b)
		if sign(got) != tt.want {
			t.Errorf("compareVersions(%q, %q) = %d, want sign %d", tt.a, tt.b, got, tt.want)
		}
		if back := compareVersions(tt.b, tt.a); sign(back) != -tt.want {
			t.Errorf("compareVersions(%q, %q) = %d, want sign %d", tt.b, tt.a, back, -tt.want)
		}
	}
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}
