package unpack

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"fmt"
)

func TestScratchDeep(t *testing.T) {
	for _, depth := range []int{128} {
		chain := strings.Repeat("a/", depth-1) + "a"
		var es []entry
		es = append(es, dir(chain+"/"))
		for i := 0; i < 200; i++ {
			es = append(es, symlink(fmt.Sprintf("l%d", i), chain))
		}
		dst := t.TempDir()
		st := time.Now()
		err := Reader(bytes.NewReader(archive(t, true, es...)), dst, Limits{})
		t.Logf("depth %d 200 links: %v err=%v", depth, time.Since(st), err)
		var fs []entry
		for i := 0; i < 5000; i++ {
			fs = append(fs, file(fmt.Sprintf("%s/f%d", strings.Repeat("a/", depth-2)+"a", i), ""))
		}
		dst = t.TempDir()
		st = time.Now()
		err = Reader(bytes.NewReader(archive(t, true, fs...)), dst, Limits{})
		t.Logf("depth %d 5000 files: %v err=%v", depth, time.Since(st), err)
	}
}
