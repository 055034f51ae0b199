package fetch

import "sync/atomic"

// progressCounter counts downloaded bytes, safely for concurrent parts, and
// holds the total once a source learns it (-1 until then).
type progressCounter struct {
	n     atomic.Int64
	total atomic.Int64
}

func newProgressCounter(total int64) *progressCounter {
	c := &progressCounter{}
	c.total.Store(total)
	return c
}

func (c *progressCounter) add(n int64) { c.n.Add(n) }

func (c *progressCounter) load() int64 { return c.n.Load() }

func (c *progressCounter) setTotal(n int64) { c.total.Store(n) }
