package publish

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPublishDir(t *testing.T) {
	src := filepath.Join(t.TempDir(), "whatever.tar.gz")
	if err := os.WriteFile(src, []byte("tarball bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &Package{Path: src, Size: 13, SHA256: strings.Repeat("ab", 32), Name: "shop", Version: "1.4.3"}
	root := t.TempDir()
	store := Dir{Root: root}
	var last int64
	url, err := Publish(context.Background(), store, p, "/dist/shop/", false, func(done, total int64) { last = done })
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(root, "dist/shop/shop-1.4.3.tar.gz")
	if url != "file://"+want {
		t.Errorf("url %q, want file://%s", url, want)
	}
	if b, _ := os.ReadFile(want); string(b) != "tarball bytes" {
		t.Errorf("tarball = %q", b)
	}
	if b, _ := os.ReadFile(want + ".sha256"); string(b) != p.SHA256+"  shop-1.4.3.tar.gz\n" {
		t.Errorf("sha256 file = %q, want sha256sum format", b)
	}
	if last != 13 {
		t.Errorf("progress ended at %d of 13 bytes", last)
	}

	_, err = Publish(context.Background(), store, p, "dist/shop", false, nil)
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "-force") {
		t.Errorf("publishing again: %v, want ErrExists that mentions -force", err)
	}
	if _, err := Publish(context.Background(), store, p, "dist/shop", true, nil); err != nil {
		t.Errorf("publishing again with force: %v", err)
	}
}

func TestOpen(t *testing.T) {
	cases := []struct {
		dest, prefix, err string
	}{
		{"/srv/releases", "", ""},
		{"file:///srv/releases", "", ""},
		{"s3://bucket/dist/shop/", "dist/shop", ""},
		{"s3:///dist", "", "must look like s3://bucket"},
		{"ftp://host/x", "", "use s3://"},
	}
	for _, tc := range cases {
		_, prefix, err := Open(context.Background(), tc.dest, "", false)
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) || prefix != tc.prefix {
			t.Errorf("Open(%q) = %q, %v; want %q, %q", tc.dest, prefix, err, tc.prefix, tc.err)
		}
	}
}
