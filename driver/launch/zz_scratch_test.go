package launch

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestScratchTaint(t *testing.T) {
	for _, n := range []int{250, 500, 1000} {
		var b strings.Builder
		for i := n; i > 0; i-- {
			fmt.Fprintf(&b, "a%d=$a%d\n", i, i-1)
		}
		b.WriteString("a0=erl_call\n")
		s := &script{rel: "x", shape: plain, out: []byte(b.String()), data: []byte(b.String())}
		st := time.Now()
		err := scrubAll([]*script{s})
		t.Logf("n=%d bytes=%d %v err=%v", n, b.Len(), time.Since(st), err != nil)
	}
	for _, n := range []int{20000, 40000} {
		text := "#!/bin/sh\necho \\\n" + strings.Repeat("x \\\n", n) + "\n"
		st := time.Now()
		logicalLines(text)
		t.Logf("cont n=%d %v", n, time.Since(st))
	}
}
