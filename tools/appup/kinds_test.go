package appup

import (
	"strings"
	"testing"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/relup"
)

// TestCodeChangeKinds: code_change/4 (gen_statem) and system_code_change/4
// (special processes) in the new code make an update advanced too.
func TestCodeChangeKinds(t *testing.T) {
	statemV1 := `-behaviour(gen_statem).
-export([init/1, callback_mode/0, idle/3]).
init(_) -> {ok, idle, 0}.
callback_mode() -> state_functions.
idle(_, _, D) -> {keep_state, D}.`
	statemV2 := strings.Replace(statemV1, "-export([init/1,", "-export([code_change/4, init/1,", 1) + `
code_change(_, S, D, _) -> {ok, S, D + 1}.`
	specialV1 := `-export([loop/1]).
loop(S) -> receive _ -> loop(S) end.`
	specialV2 := `-export([loop/1, system_code_change/4]).
loop(S) -> receive _ -> loop(S + 1) end.
system_code_change(S, _, _, _) -> {ok, S}.`
	dir := t.TempDir()
	v1 := fixture{vsn: "1", erts: "13.1.5", apps: baseApps(), shopVsn: "1", src: map[string]string{"machine": statemV1, "special": specialV1}}
	v2 := fixture{vsn: "2", erts: "13.1.5", apps: baseApps(), shopVsn: "2", src: map[string]string{"machine": statemV2, "special": specialV2}}
	p, err := Compare([]*relup.Package{v1.build(t, dir)}, v2.build(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(formatAll(p.Appups[0].Up[0].Instrs), "\n")
	want := "{update,machine,{advanced,[]},soft_purge,soft_purge,[]}\n{update,special,{advanced,[]},soft_purge,soft_purge,[]}"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestUserAppup(t *testing.T) {
	dir := t.TempDir()
	p, err := Compare([]*relup.Package{shopV1().build(t, dir)}, shopV2().build(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	mine := "%% mine\n{\"2.0.0\", [{\"1.0.0\", [{load_module, cart}]}], [{\"1.0.0\", [{load_module, cart}]}]}.\n"
	u, err := ParseAppup("shop", "2.0.0", []byte(mine), "shop.appup")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Use(u); err != nil {
		t.Fatal(err)
	}
	if p.Appups[0].Text() != mine || p.Appups[0].Source != "shop.appup" {
		t.Errorf("the user's appup is not used as written: %q", p.Appups[0].Text())
	}
	for _, bad := range []struct{ text, want string }{
		{`{"2.0.0", [{"0.9.0", []}], [{"0.9.0", []}]}.`, "no up and down entry for shop 1.0.0"},
		{`{"2.0.0", [{"1.0.0", []}], []}.`, "no up and down entry for shop 1.0.0"},
		{`{"3.0.0", [], []}.`, "it is for shop 3.0.0"},
		{`{"2.0.0", [{"1.0.0"}], []}.`, "{Vsn, Instructions}"},
		{`{"2.0.0", [], []`, "line"},
	} {
		u, err := ParseAppup("shop", "2.0.0", []byte(bad.text), "bad.appup")
		if err == nil {
			err = p.Use(u)
		}
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: got %v, want an error saying %q", bad.text, err, bad.want)
		}
	}
	// A regular-expression entry covers the versions it matches whole.
	u, err = ParseAppup("shop", "2.0.0", []byte(`{"2.0.0", [{<<"1\\..*">>, []}], [{<<"1\\..*">>, []}]}.`), "re.appup")
	if err != nil || p.Use(u) != nil {
		t.Errorf("a regular-expression appup is not accepted: %v", err)
	}
	u, _ = ParseAppup("shop", "2.0.0", []byte(`{"2.0.0", [{<<"1">>, []}], [{<<"1">>, []}]}.`), "re.appup")
	if err := p.Use(u); err == nil {
		t.Error("a regular expression that matches only part of 1.0.0 covers it")
	}
	if err := (&Plan{}).Use(u); err == nil || !strings.Contains(err.Error(), "needs no appup") {
		t.Errorf("an appup for an unchanged application: %v", err)
	}
}
