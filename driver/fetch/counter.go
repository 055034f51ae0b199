package fetch

import "sync/atomic"

// progressCounter counts downloaded bytes, safely for concurrent parts.
type progressCounter struct{ n atomic.Int64 }

func (c *progressCounter) add(n int64) { c.n.Add(n) }

func (c *progressCounter) load() int64 { return c.n.Load() }
