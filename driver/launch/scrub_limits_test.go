package launch

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
)

func TestLogicalLinesJoinsContinuedLines(t *testing.T) {
	text := "#!/bin/sh\necho \\\n" + strings.Repeat("x \\\n", 200_000) + "done\n"
	ls := logicalLines(text)
	if len(ls) != 3 || len(ls[1].starts) != 200_002 || !strings.HasSuffix(ls[1].raw, "x done") {
		t.Fatalf("%d logical lines", len(ls))
	}
}

// hostileScripts are env.sh files that made the scan quadratic or worse:
// 200,000 continued lines (14 s for 80,000 when they were joined by +=),
// and 10,000 assignments that pass erl_call on in reverse order, which
// took a round each of a fixed point. BenchmarkScrubHostileScripts
// measures them; the scan is now in proportion to a script's length.
func hostileScripts() map[string]string {
	var chain strings.Builder
	for i := 10_000; i > 0; i-- {
		fmt.Fprintf(&chain, "a%d=$a%d\n", i, i-1)
	}
	return map[string]string{
		"continued lines":  "#!/bin/sh\necho \\\n" + strings.Repeat("x \\\n", 200_000) + "done\n",
		"reverse chain":    "#!/bin/sh\n" + chain.String() + "a0=erl_call\n$a10000 -c x\n",
		"long lines":       "#!/bin/sh\n" + strings.Repeat("$a$b${c}${#d}$$", 15_000) + "\n",
		"many assignments": "#!/bin/sh\n" + strings.Repeat("a=$b b=$a c=$d ", 15_000) + "\n",
	}
}

func TestScrubHostileScripts(t *testing.T) {
	for name, env := range hostileScripts() {
		t.Run(name, func(t *testing.T) {
			r := releaseOf(t, release.Mix, mixFiles(), map[string]string{"releases/0.1.0/env.sh": env})
			err := Scrub(r)
			if name == "reverse chain" {
				if err == nil || !strings.Contains(err.Error(), "env.sh line 10003: a -c flag given to erl_call") {
					t.Fatalf("error %v, want the -c given to erl_call through the chain", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestScrubRefusesHugeScripts(t *testing.T) {
	big := "#!/bin/sh\n" + strings.Repeat("# SECRET comment\n", 70_000) // 1.1 MiB
	t.Run("one script", func(t *testing.T) {
		r := releaseOf(t, release.Mix, mixFiles(), map[string]string{"releases/0.1.0/env.sh": big})
		err := Scrub(r)
		want := filepath.Join(r.Root, "releases/0.1.0/env.sh") + " is larger than 1 MiB"
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "SECRET") {
			t.Fatalf("error %v, want one with %q", err, want)
		}
	})
	t.Run("all scripts", func(t *testing.T) {
		// One file, hard-linked many times under bin/hooks.
		r := releaseOf(t, release.Relx, relxFiles(), map[string]string{"bin/hooks/h0": big[:1<<20]})
		for i := 1; i < 100; i++ {
			if err := os.Link(filepath.Join(r.Root, "bin/hooks/h0"), filepath.Join(r.Root, fmt.Sprintf("bin/hooks/h%d", i))); err != nil {
				t.Fatal(err)
			}
		}
		err := Scrub(r)
		if err == nil || !strings.Contains(err.Error(), "add up to more than 8 MiB") || len(err.Error()) > 300 {
			t.Fatalf("error %v, want the total refused", err)
		}
	})
	t.Run("many errors", func(t *testing.T) {
		hooks := strings.Repeat("$x/h ", 100_000)
		r := releaseOf(t, release.Relx, relxFiles(), map[string]string{"bin/app": "#!/bin/sh\nPRE_START_HOOKS=\"" + hooks + "\"\n"})
		err := Scrub(r)
		if err == nil || strings.Count(err.Error(), "cannot resolve") != maxErrors {
			t.Fatalf("error %.500v, want %d of the errors", err, maxErrors)
		}
	})
}

// BenchmarkScrubHostileScripts scans each hostile env.sh: a scan in
// proportion to length takes well under a second each.
func BenchmarkScrubHostileScripts(b *testing.B) {
	for name, env := range hostileScripts() {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				r := releaseOf(b, release.Mix, mixFiles(), map[string]string{"releases/0.1.0/env.sh": env})
				b.StartTimer()
				_ = Scrub(r)
			}
		})
	}
}
