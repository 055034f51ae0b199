package driver

import (
	"context"
	"errors"
	"slices"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/hot"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
	"github.com/nomad-driver-beam/nomad-driver-beam/hotspec"
)

// hotCurrent is the outcome of a target the node already runs, which the
// record does not keep as the last upgrade.
const hotCurrent = string(hotspec.Current)

// converge brings the node to the target in raw, the value of key in the
// hot-upgrade Variable (see upgrade.Converge). It returns true when the
// node could not be asked yet and the target should be tried again soon.
func (d *Driver) converge(ctx context.Context, h *taskHandle, hc HotUpgradeConfig, key, raw string) (retry bool) {
	h.hotMu.Lock()
	defer h.hotMu.Unlock()
	st := h.snapshot()
	ctx, cancel := context.WithTimeout(ctx, hc.timeout())
	defer cancel()
	u := d.upgrader(h, &st, key, hotVariable(h.taskConfig, hc))
	u.Check = checkSource
	if st.ReleaseKind == string(release.Shipment) {
		u.Refuse = errors.New("a Gleam erlang-shipment has no release_handler release (no .rel, no relup); deploy it as a full release")
	} else if ctl, err := d.controlClient(h, &st); err != nil {
		u.Refuse = err
	} else {
		u.Node = &hot.Node{Eval: ctl, Root: st.ReleaseRoot, CallTimeout: hc.timeout()}
	}
	retry = u.Converge(ctx, raw, st.ReleaseVersion, &journal{d: d, h: h})
	if retry {
		h.logger.Debug("hot upgrade deferred: the node does not answer yet")
	}
	return retry
}

// journal is the task's record of hot-upgrade targets.
type journal struct {
	d *Driver
	h *taskHandle
}

func (j *journal) Failed(raw string) bool { return slices.Contains(j.h.hot.Failed, raw) }

func (j *journal) Record(raw, from, to string, o hotspec.Outcome, err error) {
	j.d.recordHot(j.h, raw, from, to, string(o), err)
}
