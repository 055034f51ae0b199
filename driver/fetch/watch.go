package fetch

import (
	"context"
	"errors"
	"fmt"
	"time"
)

const (
	defaultMinRate     = 10 << 10
	defaultStallWindow = 30 * time.Second
)

var (
	errStalled  = errors.New("download too slow")
	errNoAnswer = errors.New("no answer")
)

// watch cancels an attempt that, over any full StallWindow since the
// download began, received fewer than MinRate*StallWindow bytes: a server
// that drips bytes must not hold a task's start (and the cache entry's
// lock) forever.
func (f *Fetcher) watch(ctx context.Context, c *progressCounter, cancel context.CancelCauseFunc) {
	window := f.cfg.StallWindow
	tick := time.NewTicker(min(max(window/10, 10*time.Millisecond), time.Second))
	defer tick.Stop()
	need := int64(float64(f.cfg.MinRate) * window.Seconds())
	type sample struct {
		at time.Time
		n  int64
	}
	// samples[0] is the latest sample at least a window old, once there
	// is one.
	samples := []sample{{time.Now(), c.load()}}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			now, n := time.Now(), c.load()
			samples = append(samples, sample{now, n})
			for len(samples) > 1 && now.Sub(samples[1].at) >= window {
				samples = samples[1:]
			}
			if now.Sub(samples[0].at) >= window && n-samples[0].n < need {
				cancel(errStalled)
				return
			}
		}
	}
}

// stalled is the transient error for an attempt the watchdog ended.
func (f *Fetcher) stalled(got int64) error {
	return fmt.Errorf("the download was slower than %s for %s (%d bytes received in all); "+
		"the server or the network is too slow", rate(f.cfg.MinRate), f.cfg.StallWindow, got)
}

// rate shows bytes a second in KiB/s or MiB/s when it is a whole number
// of them.
func rate(r int64) string {
	switch {
	case r >= 1<<20 && r%(1<<20) == 0:
		return fmt.Sprintf("%d MiB/s", r>>20)
	case r >= 1<<10 && r%(1<<10) == 0:
		return fmt.Sprintf("%d KiB/s", r>>10)
	}
	return fmt.Sprintf("%d B/s", r)
}
