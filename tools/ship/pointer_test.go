package ship

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/fetch"
)

func TestReleaseSource(t *testing.T) {
	for pointer, want := range map[string]string{
		"s3://deploys/versions/shop/prod/current.json":              "s3://deploys/dist/shop/shop-1.4.3.tar.gz",
		"gs://b/team/versions/shop/prod/current.json":               "gs://b/team/dist/shop/shop-1.4.3.tar.gz",
		"https://x.example/a/versions/shop/prod/current.json?sig=1": "https://x.example/a/dist/shop/shop-1.4.3.tar.gz",
		"/srv/deploy/versions/shop/prod/current.json":               "/srv/deploy/dist/shop/shop-1.4.3.tar.gz",
	} {
		got, err := ReleaseSource(pointer, "1.4.3")
		if err != nil || got != want {
			t.Errorf("ReleaseSource(%s) = %q, %v; want %q", pointer, got, err, want)
		}
	}
	for _, bad := range []string{"s3://b/current.json", "s3://b/versions/shop/current.json", "/x/versions//prod/current.json"} {
		if got, err := ReleaseSource(bad, "1"); err == nil {
			t.Errorf("ReleaseSource(%s) = %q", bad, got)
		}
	}
}

func TestReadPointer(t *testing.T) {
	dir := t.TempDir()
	f := fetch.New(fetch.Config{FileRoots: []string{dir}})
	write := func(body string) string {
		p := filepath.Join(dir, "current.json")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p, err := ReadPointer(context.Background(), f, write(`{"version":"1.4.3","hash":"abc123","pre_commands":["eval Shop.Release.migrate()","bin/seed --all"]}`), dir)
	if err != nil {
		t.Fatal(err)
	}
	cmds, err := p.Commands()
	if err != nil || !slices.Equal(cmds[0], []string{"eval", "Shop.Release.migrate()"}) || !slices.Equal(cmds[1], []string{"bin/seed", "--all"}) {
		t.Errorf("commands %q, %v", cmds, err)
	}
	for body, want := range map[string]string{
		`{"version":"../../etc"}`:            "is not a release version",
		`{"version":"1","sha256":"xyz"}`:     "64 hex",
		`not json`:                           "is not {",
		`{"version":"1\u001b[2J"}`:           "is not a release version",
		`{"version":"1","pre_commands":[7]}`: "is not {",
	} {
		if _, err := ReadPointer(context.Background(), f, write(body), dir); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", body, err, want)
		}
	}
}
