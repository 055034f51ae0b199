package taskdir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadFileRefusesHardLinks: a second link may be one the task made to
// a file it cannot read; the plugin reads it as root, so it refuses.
func TestReadFileRefusesHardLinks(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mine"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if b, err := d.ReadFile("mine", 10); err != nil || string(b) != "x" {
		t.Fatalf("a plain file: %q %v", b, err)
	}
	if err := os.Link(filepath.Join(dir, "mine"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadFile("link", 10); err == nil || !strings.Contains(err.Error(), "2 links") {
		t.Fatalf("a hard link: %v", err)
	}
}
