package appup

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/eterm"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/relup"
)

func formatAll(ts []eterm.Term) []string {
	var out []string
	for _, t := range ts {
		out = append(out, eterm.Format(t))
	}
	return out
}

func TestCompareInstructions(t *testing.T) {
	dir := t.TempDir()
	old := shopV1().build(t, dir)
	nw := shopV2().build(t, dir)
	p, err := Compare([]*relup.Package{old}, nw)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Appups) != 1 || p.Appups[0].App != "shop" || p.Appups[0].Version != "2.0.0" {
		t.Fatalf("appups: %+v", p.Appups)
	}
	a := p.Appups[0]
	// audit and tax are added first, then plain after tax (it calls tax),
	// cart after plain (it calls plain), then the rest by name; gone is
	// deleted last. same only lost its debug info: no instruction.
	want := []string{
		"{add_module,audit}",
		"{load_module,stray,soft_purge,soft_purge,[]}",
		"{update,sup,static,default,{advanced,[]},soft_purge,soft_purge,[]}",
		"{add_module,tax}",
		"{load_module,plain,soft_purge,soft_purge,[tax]}",
		"{update,cart,{advanced,[]},soft_purge,soft_purge,[plain]}",
		"{delete_module,gone}",
	}
	if len(a.Up) != 1 || a.Up[0].Vsn != "1.0.0" {
		t.Fatalf("up: %+v", a.Up)
	}
	if got := formatAll(a.Up[0].Instrs); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("up instructions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Down loads version 1's code, but release_handler calls code_change in
	// version 2's, before loading 1: the kinds and dependencies are 2's.
	// gone comes back and what 2 added goes.
	wantDown := []string{
		"{add_module,gone}",
		"{load_module,plain,soft_purge,soft_purge,[]}",
		"{update,cart,{advanced,[]},soft_purge,soft_purge,[plain]}",
		"{load_module,stray,soft_purge,soft_purge,[]}",
		"{update,sup,static,default,{advanced,[]},soft_purge,soft_purge,[]}",
		"{delete_module,audit}",
		"{delete_module,tax}",
	}
	if got := formatAll(a.Down[0].Instrs); strings.Join(got, "\n") != strings.Join(wantDown, "\n") {
		t.Errorf("down instructions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantDown, "\n"))
	}
	// The printed appup reads back as the same instructions.
	back, err := ParseAppup("shop", "2.0.0", []byte(a.Text()), "printed")
	if err != nil {
		t.Fatalf("%v\n%s", err, a.Text())
	}
	if !eterm.Equal(eterm.List(back.Up[0].Instrs), eterm.List(a.Up[0].Instrs)) {
		t.Errorf("printed appup reads back as %v", back.Up)
	}
	warnings := strings.Join(p.Warnings, "\n")
	for _, w := range []string{"sup: child audit is new", "stray (gen_server) is a stateful process that no supervisor"} {
		if !strings.Contains(warnings, w) {
			t.Errorf("no warning %q in:\n%s", w, warnings)
		}
	}
	if err := p.Refusal(); err != nil {
		t.Errorf("refused: %v", err)
	}
	if strings.Contains(warnings, "cart (gen_server) is a stateful") {
		t.Errorf("cart is named by sup's child specs, yet warned about:\n%s", warnings)
	}
}

func TestCompareRemovedChild(t *testing.T) {
	dir := t.TempDir()
	v1, v2 := shopV2(), shopV1()
	v1.vsn, v1.shopVsn, v2.vsn, v2.shopVsn = "1.0.0", "1.0.0", "2.0.0", "2.0.0"
	p, err := Compare([]*relup.Package{v1.build(t, dir)}, v2.build(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	// audit is a deleted gen_server: a blocker, not a warning, since its
	// purge kills it and sup's old child spec restarts it into undef.
	if w := strings.Join(p.Warnings, "\n"); strings.Contains(w, "child audit is gone") {
		t.Errorf("a deleted child is only warned about:\n%s", w)
	}
	err = p.Refusal()
	if err == nil || !strings.Contains(err.Error(), "audit (gen_server) is deleted by the upgrade from 1.0.0") ||
		!strings.Contains(err.Error(), "-appup shop=FILE") {
		t.Fatalf("refusal %v", err)
	}
	// The user's own appup lifts it.
	u, _ := ParseAppup("shop", "2.0.0", []byte(`{"2.0.0",[{"1.0.0",[]}],[{"1.0.0",[]}]}.`), "mine.appup")
	if err := p.Use(u); err != nil || p.Refusal() != nil {
		t.Errorf("with the user's appup: %v, %v", err, p.Refusal())
	}
}

func TestCompareSeveralFrom(t *testing.T) {
	dir := t.TempDir()
	v0 := shopV1()
	v0.vsn, v0.shopVsn = "0.9.0", "0.9.0"
	v1 := shopV1()
	p, err := Compare([]*relup.Package{v0.build(t, dir), v1.build(t, dir)}, shopV2().build(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	a := p.Appups[0]
	if len(a.Up) != 2 || a.Up[0].Vsn != "0.9.0" || a.Up[1].Vsn != "1.0.0" || len(a.Down) != 2 {
		t.Fatalf("want up and down entries from 0.9.0 and 1.0.0, got %+v", a)
	}
}

func TestCompareApplications(t *testing.T) {
	dir := t.TempDir()
	v1 := shopV1()
	v1.apps = baseApps()
	v1.apps["legacy"] = "1.0"
	v2 := shopV2()
	v2.apps = baseApps()
	v2.apps["metrics"] = "0.3"
	p, err := Compare([]*relup.Package{v1.build(t, dir)}, v2.build(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.Added, ";") != "metrics (from 1.0.0)" || strings.Join(p.Removed, ";") != "legacy (from 1.0.0)" {
		t.Errorf("added %v, removed %v", p.Added, p.Removed)
	}
}

func TestCompareSameVersionChanged(t *testing.T) {
	dir := t.TempDir()
	v2 := shopV2()
	v2.shopVsn = "1.0.0"
	_, err := Compare([]*relup.Package{shopV1().build(t, dir)}, v2.build(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := Compare([]*relup.Package{shopV1().build(t, dir)}, v2.build(t, dir))
	if err := p.Refusal(); err == nil || !strings.Contains(err.Error(), "shop keeps version 1.0.0 from 1.0.0, but its modules differ") {
		t.Errorf("no refusal of an unbumped version: %v", err)
	}
	if len(p.Appups) != 0 {
		t.Errorf("appups for an unchanged version: %+v", p.Appups)
	}
}

func TestCompareRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(old, nw *fixture)
		want string
	}{
		{"erts", func(_, nw *fixture) { nw.erts = "14.0" }, "ERTS changes from 13.1.5 to 14.0, which needs a new emulator: ship it with a full deploy"},
		{"kernel", func(_, nw *fixture) { nw.apps["kernel"] = "9.0" }, "kernel changes from 8.5.3 to 9.0, which needs an emulator restart"},
		{"elixir", func(old, nw *fixture) { old.apps["elixir"] = "1.14.0"; nw.apps["elixir"] = "1.15.0" }, "elixir changes from 1.14.0 to 1.15.0"},
		{"no sasl in new", func(_, nw *fixture) { delete(nw.apps, "sasl") }, "does not include sasl, which holds release_handler"},
		{"no sasl in old", func(old, _ *fixture) { delete(old.apps, "sasl") }, "shop 1.0.0 does not run sasl"},
		{"same version", func(_, nw *fixture) { nw.vsn = "1.0.0" }, "-from and -to are both version 1.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			old, nw := shopV1(), shopV2()
			tc.edit(&old, &nw)
			if nw.vsn == old.vsn {
				dir2 := t.TempDir()
				_, err := Compare([]*relup.Package{old.build(t, dir)}, nw.build(t, dir2))
				checkRefusal(t, err, tc.want)
				return
			}
			_, err := Compare([]*relup.Package{old.build(t, dir)}, nw.build(t, dir))
			checkRefusal(t, err, tc.want)
		})
	}
}

func checkRefusal(t *testing.T, err error, want string) {
	t.Helper()
	var r *Refusal
	if !errors.As(err, &r) {
		t.Fatalf("want a refusal, got %v", err)
	}
	if !strings.Contains(r.Error(), want) {
		t.Errorf("refusal %q does not say %q", r.Error(), want)
	}
}

// TestMD5 checks the digest against beam_lib:md5/1, and that a compressed
// beam reads the same.
func TestMD5(t *testing.T) {
	dir := t.TempDir()
	p := shopV2().build(t, dir)
	ebin := filepath.Join(p.Root, "lib", "shop-2.0.0", "ebin")
	out, err := exec.Command("erl", "-noshell", "-eval",
		`{ok,{_,M}} = beam_lib:md5("`+filepath.Join(ebin, "cart.beam")+`"), io:format("~s", [binary:encode_hex(M)]), halt().`).Output()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(ebin, "cart.beam"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ReadBeam(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.ToUpper(hexString(m.MD5[:])); got != string(out) {
		t.Errorf("md5 %s, beam_lib:md5 says %s", got, out)
	}
	if !m.Exports["code_change/3"] || m.Behaviours[0] != "gen_server" || strings.Join(m.Calls, ",") != "gen_server,plain" {
		t.Errorf("read %+v", m)
	}
	// Funs: beam_lib:md5 zeroes each FunT entry's OldUniq.
	fdir := t.TempDir()
	src := writeSrc(t, fdir, "withfun", "-export([f/1]).\nf(L) -> lists:map(fun(X) -> X + 1 end, L).")
	if out, err := exec.Command("erlc", "-o", fdir, src).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want, err := exec.Command("erl", "-noshell", "-eval",
		`{ok,{_,M}} = beam_lib:md5("`+filepath.Join(fdir, "withfun.beam")+`"), io:format("~s", [binary:encode_hex(M)]), halt().`).Output()
	if err != nil {
		t.Fatal(err)
	}
	fb, _ := os.ReadFile(filepath.Join(fdir, "withfun.beam"))
	fm, err := ReadBeam(fb)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.ToUpper(hexString(fm.MD5[:])); got != string(want) {
		t.Errorf("md5 of a module with a fun %s, beam_lib:md5 says %s", got, want)
	}
	cdir := t.TempDir()
	if out, err := exec.Command("erlc", "+compressed", "-o", cdir, writeSrc(t, cdir, "cart", cartV2)).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	cb, _ := os.ReadFile(filepath.Join(cdir, "cart.beam"))
	if cb[0] != 0x1f {
		t.Fatal("erlc +compressed wrote an uncompressed beam")
	}
	cm, err := ReadBeam(cb)
	if err != nil {
		t.Fatal(err)
	}
	if cm.MD5 != m.MD5 {
		t.Error("the compressed beam has another md5")
	}
}

func writeSrc(t *testing.T, dir, mod, src string) string {
	file := filepath.Join(dir, mod+".erl")
	writeFile(t, file, "-module("+mod+").\n"+src+"\n")
	return file
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestBlockers(t *testing.T) {
	dir := t.TempDir()
	nifV1 := `-export([f/0]).
f() -> erlang:load_nif("priv/nif", 0).`
	nifV2 := `-export([f/0, g/0]).
f() -> erlang:load_nif("priv/nif", 1).
g() -> ok.`
	v1, v2 := shopV1(), shopV2()
	v1.src["nif"], v2.src["nif"] = nifV1, nifV2
	// util moves from shop to a new application, lib1.
	v1.src["util"] = "-export([u/0]).\nu() -> 1."
	v2.apps["lib1"] = "1.0"
	v2.appSrc = map[string]map[string]string{"lib1": {"util": "-export([u/0]).\nu() -> 1."}}
	p, err := Compare([]*relup.Package{v1.build(t, dir)}, v2.build(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	err = p.Refusal()
	for _, want := range []string{"nif loads a NIF and changed", "util moves from shop to lib1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %v lacks %q", err, want)
		}
	}
}
