package upgrade

import (
	"context"
	"time"

	"github.com/nomad-driver-beam/nomad-driver-beam/hotspec"
)

// Source reads the hot-upgrade Variable with blocking queries: Read
// returns its items once its index passes index (0: at once), or when ctx
// ends.
type Source interface {
	Read(ctx context.Context, index uint64) (items map[string]string, last uint64, err error)
}

// Watch follows src until ctx ends, and hands each allocation's target
// (its own key, else the all key) to converge, one at a time. A kick cuts
// a wait short and reads the Variable anew. When converge asks for a
// retry (the node was not up yet), the Variable is read again shortly.
// Read errors are passed to warn and retried with a backoff up to 30 s.
func Watch(ctx context.Context, src Source, allocID string, kick <-chan struct{},
	converge func(key, raw string) (retry bool), warn func(err error)) {
	var index uint64
	backoff := time.Second
	for ctx.Err() == nil {
		qctx, cancel := context.WithCancel(ctx)
		kicked := make(chan struct{})
		go func() {
			select {
			case <-kick:
				close(kicked)
				cancel()
			case <-qctx.Done():
			}
		}()
		items, last, err := src.Read(qctx, index)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			select {
			case <-kicked:
				index = 0
				continue
			default:
			}
			warn(err)
			select {
			case <-ctx.Done():
				return
			case <-kick:
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
		if last < index {
			index = 0 // the index went back: start over
		} else {
			index = last
		}
		key, raw := hotspec.Pick(items, allocID)
		if raw != "" && converge(key, raw) {
			index = 0
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}
