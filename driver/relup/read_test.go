package relup

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	releasefile "github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
)

// secret is content of a hostile file, which no error may quote at length.
const secret = "secret_7f3a"

// quotesLittle fails unless msg is short, names file and quotes at most
// maxQuoted bytes of secret.
func quotesLittle(t *testing.T, msg, root, file string) {
	t.Helper()
	if !strings.Contains(msg, filepath.Join(root, file)) {
		t.Errorf("error %q does not name %s", msg, file)
	}
	if n := strings.Count(msg, secret); n*len(secret) > releasefile.MaxQuoted || len(msg)-len(root) > 200 {
		t.Errorf("error of %d bytes quotes the file %d times: %.300q", len(msg), n, msg)
	}
}

func TestInspectHostileFiles(t *testing.T) {
	huge := strings.Repeat(secret+" ", 100<<10) // 1.1 MiB
	cases := []struct {
		name, file, body, want string
	}{
		{"huge start_erl.data", "releases/start_erl.data", huge, "larger than 64 KiB"},
		{"garbage start_erl.data", "releases/start_erl.data", "1 2 " + huge[:60<<10], `got "1 2 secret`},
		{"huge .rel", "releases/0.2.0/hello.rel", relText("hello", "0.2.0") + "%" + huge, "larger than 1 MiB"},
		{"huge relup", "releases/0.2.0/relup", "%" + strings.Repeat(huge, 8), "larger than 8 MiB"},
		{"long atom in .rel", "releases/0.2.0/hello.rel", "{release, " + strings.Repeat("a", 300) + "}.", "atom longer than"},
		{"long variable in .rel", "releases/0.2.0/hello.rel", "{release, " + strings.Repeat("X"+secret, 1000) + "}.", "unexpected variable X" + secret},
		{"long integer in .rel", "releases/0.2.0/hello.rel", "{release, " + strings.Repeat("9", 5000) + "}.", "integer 999"},
		{"bad application in .rel", "releases/0.2.0/hello.rel",
			`{release,{"hello","0.2.0"},{erts,"13.1.5"},[{kernel,"8.5.3"},{hello,"` + huge[:10<<10] + `",x,y,z}]}.`, "application 2 is not"},
		{"long name in .rel", "releases/0.2.0/hello.rel", `{release,{"` + strings.Repeat(secret, 1000) + `","0.2.0"},{erts,"13.1.5"},[]}.`, "names release"},
		{"relup for another version", "releases/0.2.0/relup", relupFor(strings.Repeat(secret, 1000), nil, nil), "is for version"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			files := release("0.2.0", "")
			files[tc.file] = tc.body
			root := writeTree(t, files)
			_, err := Inspect(root, "hello")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %.300v, want one with %q", err, tc.want)
			}
			quotesLittle(t, err.Error(), root, tc.file)
		})
	}
}

func TestReadFileLimits(t *testing.T) {
	root := writeTree(t, map[string]string{"f": "12345678"})
	if b, err := readFile(filepath.Join(root, "f"), 8); err != nil || string(b) != "12345678" {
		t.Errorf("at the limit: %q, %v", b, err)
	}
	if _, err := readFile(filepath.Join(root, "missing"), 8); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	root = writeTree(t, map[string]string{"releases/RELEASES": "[]." + strings.Repeat("%"+secret+"\n", 100<<10)})
	if _, err := ReadRELEASES(root); err == nil || !strings.Contains(err.Error(), "larger than 1 MiB") {
		t.Errorf("huge RELEASES: %v", err)
	} else {
		quotesLittle(t, err.Error(), root, "releases/RELEASES")
	}
	if _, err := readFile("/dev/zero", 1<<10); err == nil || !strings.Contains(err.Error(), "larger than 1 KiB") {
		t.Errorf("/dev/zero: %v", err)
	}
}

// The errors of the checks list a few versions, clipped.
func TestCheckErrorsAreShort(t *testing.T) {
	var up []string
	for i := range 200 {
		up = append(up, entry(fmt.Sprintf("0.%d.%s", i, strings.Repeat("x", 100)), "[]"))
	}
	p := inspectFake(t, relupFor("0.3.0", up, nil))
	err := p.CheckUpgrade("hello", "0.0.9", "13.1.5")
	if err == nil || !strings.Contains(err.Error(), "and 192 more") || len(err.Error()) > 1000 {
		t.Fatalf("error of %d bytes: %.2000v", len(fmt.Sprint(err)), err)
	}
	err = p.CheckUpgrade("hello", "0.0.9", strings.Repeat("9", 1<<20))
	if err == nil || len(err.Error()) > 300 {
		t.Fatalf("error of %d bytes", len(fmt.Sprint(err)))
	}
}
