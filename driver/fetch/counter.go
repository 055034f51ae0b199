package fetch

import (
	"io"
	"sync/atomic"
)

// counter counts the bytes written through it, safely for a concurrent
// progress reporter.
type counter struct {
	w io.Writer
	n int64
	a atomic.Int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.a.Store(c.n)
	return n, err
}

func (c *counter) load() int64 { return c.a.Load() }
