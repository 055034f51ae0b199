package appup

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/relup"
)

// The tests build small releases from Erlang source with the host's erlc:
// `make unit` installs Erlang from Debian first.

// fixture is a release to be built: its name, version, ERTS, the versions
// of its applications, and the sources of the one application "shop".
type fixture struct {
	vsn, erts string
	apps      map[string]string // application -> version, besides shop
	shopVsn   string
	src       map[string]string // module -> source
	opts      []string          // erlc options
	// appSrc holds the sources of applications besides shop, by
	// application and module; their versions are in apps.
	appSrc map[string]map[string]string
}

func baseApps() map[string]string {
	return map[string]string{"kernel": "8.5.3", "stdlib": "4.2", "sasl": "4.2"}
}

// build writes the release under dir and returns it as a relup.Package.
func (f fixture) build(t *testing.T, dir string) *relup.Package {
	t.Helper()
	if _, err := exec.LookPath("erlc"); err != nil {
		t.Fatal("erlc is not installed: run `make erlang` (Debian's erlang package)")
	}
	root := filepath.Join(dir, "rel-"+f.vsn)
	var rel []string
	for app, vsn := range f.apps {
		rel = append(rel, fmt.Sprintf("{%s,%q}", app, vsn))
		ebin := writeApp(t, root, app, vsn, keys(f.appSrc[app]))
		compile(t, filepath.Join(dir, "src-"+f.vsn+"-"+app), ebin, f.appSrc[app], nil)
	}
	rel = append(rel, fmt.Sprintf("{shop,%q}", f.shopVsn))
	ebin := writeApp(t, root, "shop", f.shopVsn, keys(f.src))
	compile(t, filepath.Join(dir, "src-"+f.vsn), ebin, f.src, f.opts)
	relDir := filepath.Join(root, "releases", f.vsn)
	mustMkdir(t, relDir)
	writeFile(t, filepath.Join(relDir, "shop.rel"),
		fmt.Sprintf("{release,{\"shop\",%q},{erts,%q},[%s]}.\n", f.vsn, f.erts, strings.Join(rel, ",")))
	writeFile(t, filepath.Join(root, "releases", "start_erl.data"), f.erts+" "+f.vsn+"\n")
	p, err := relup.InspectVersion(root, "shop", f.vsn)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// compile writes the sources into srcDir and compiles them into ebin.
func compile(t *testing.T, srcDir, ebin string, src map[string]string, opts []string) {
	t.Helper()
	if len(src) == 0 {
		return
	}
	mustMkdir(t, srcDir)
	var files []string
	for m, s := range src {
		file := filepath.Join(srcDir, m+".erl")
		writeFile(t, file, fmt.Sprintf("-module(%s).\n%s\n", m, s))
		files = append(files, file)
	}
	args := append(append([]string{"-o", ebin}, opts...), files...)
	if out, err := exec.Command("erlc", args...).CombinedOutput(); err != nil {
		t.Fatalf("erlc: %v\n%s", err, out)
	}
}

// writeApp writes lib/APP-VSN/ebin/APP.app listing modules, and returns
// the ebin directory.
func writeApp(t *testing.T, root, app, vsn string, modules []string) string {
	t.Helper()
	ebin := filepath.Join(root, "lib", app+"-"+vsn, "ebin")
	mustMkdir(t, ebin)
	writeFile(t, filepath.Join(ebin, app+".app"), fmt.Sprintf(
		"{application,%s,[{vsn,%q},{modules,[%s]},{applications,[kernel,stdlib]}]}.\n", app, vsn, strings.Join(modules, ",")))
	return ebin
}

func keys(m map[string]string) []string { return sortedKeys(m) }

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, file, data string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Sources of version 1 and version 2 of the application shop.
const (
	plainV1 = `-export([price/1]).
price(X) -> X * 2.`
	// plain calls the module that version 2 adds.
	plainV2 = `-export([price/1]).
price(X) -> tax:add(X * 2).`
	taxV2 = `-export([add/1]).
add(X) -> X + 1.`
	cartV1 = `-behaviour(gen_server).
-export([start_link/0, init/1, handle_call/3, handle_cast/2]).
start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).
init([]) -> {ok, []}.
handle_call(get, _, S) -> {reply, S, S}.
handle_cast(_, S) -> {noreply, S}.`
	// cart changes its state shape and converts it in code_change, and
	// calls plain.
	cartV2 = `-behaviour(gen_server).
-export([start_link/0, init/1, handle_call/3, handle_cast/2, code_change/3]).
start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).
init([]) -> {ok, #{items => []}}.
handle_call(get, _, S) -> {reply, plain:price(1), S}.
handle_cast(_, S) -> {noreply, S}.
code_change(_, L, _) when is_list(L) -> {ok, #{items => L}};
code_change(_, S, _) -> {ok, S}.`
	supV1 = `-behaviour(supervisor).
-export([start_link/0, init/1]).
start_link() -> supervisor:start_link({local, ?MODULE}, ?MODULE, []).
init([]) -> {ok, {#{}, [#{id => cart, start => {cart, start_link, []}}]}}.`
	// sup gains a child, audit.
	supV2 = `-behaviour(supervisor).
-export([start_link/0, init/1]).
start_link() -> supervisor:start_link({local, ?MODULE}, ?MODULE, []).
init([]) -> {ok, {#{intensity => 3}, [#{id => cart, start => {cart, start_link, []}},
                                     #{id => audit, start => {audit, start_link, []}}]}}.`
	auditV2 = `-behaviour(gen_server).
-export([start_link/0, init/1, handle_call/3, handle_cast/2]).
start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).
init([]) -> {ok, 0}.
handle_call(_, _, S) -> {reply, S, S}.
handle_cast(_, S) -> {noreply, S}.`
	// stray is a gen_server that no supervisor names; version 2 changes it.
	strayV1 = `-behaviour(gen_server).
-export([init/1, handle_call/3, handle_cast/2]).
init([]) -> {ok, 1}.
handle_call(_, _, S) -> {reply, S, S}.
handle_cast(_, S) -> {noreply, S}.`
	strayV2 = `-behaviour(gen_server).
-export([init/1, handle_call/3, handle_cast/2]).
init([]) -> {ok, 2}.
handle_call(_, _, S) -> {reply, S, S}.
handle_cast(_, S) -> {noreply, S}.`
	goneV1 = `-export([f/0]).
f() -> ok.`
	sameV1 = `-export([g/0]).
g() -> same.`
)

func shopV1() fixture {
	return fixture{vsn: "1.0.0", erts: "13.1.5", apps: baseApps(), shopVsn: "1.0.0",
		src:  map[string]string{"plain": plainV1, "cart": cartV1, "sup": supV1, "stray": strayV1, "gone": goneV1, "same": sameV1},
		opts: []string{"+debug_info"}}
}

// shopV2 is compiled without debug info, which must not count as a change
// of the module same.
func shopV2() fixture {
	return fixture{vsn: "2.0.0", erts: "13.1.5", apps: baseApps(), shopVsn: "2.0.0",
		src: map[string]string{"plain": plainV2, "tax": taxV2, "cart": cartV2, "sup": supV2, "audit": auditV2,
			"stray": strayV2, "same": sameV1}}
}
