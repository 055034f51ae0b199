package upgrade

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/hot"
	"github.com/nomad-driver-beam/nomad-driver-beam/hotspec"
)

// Journal is the task's memory of the targets it was given: a target that
// failed or was refused is not tried again until its value changes.
type Journal interface {
	Failed(raw string) bool
	Record(raw, from, to string, o hotspec.Outcome, err error)
}

// Converge brings the node to the target in raw, the value of u.Key in the
// hot-upgrade Variable, when the driver believes the node runs running.
// Every outcome is reported and recorded in j; none stops the task.
//
// It returns true when the node could not be asked yet (it is booting) and
// the target should be tried again shortly.
func (u *Upgrade) Converge(ctx context.Context, raw, running string, j Journal) (retry bool) {
	if j.Failed(raw) {
		return false
	}
	u.from, u.to, u.start = running, "", time.Now()
	t, err := hotspec.Parse(raw)
	if err == nil && u.Check != nil {
		err = u.Check(t)
	}
	if err != nil {
		u.emit(hotspec.Invalid, "Hot upgrade target %s in %s is invalid: %v", u.Key, u.Variable, err)
		j.Record(raw, running, "", hotspec.Invalid, err)
		return false
	}
	u.to = t.Version
	refuse := func(err error) bool {
		u.emit(hotspec.Refused, "Hot upgrade to %s refused, node untouched: %v", t.Version, err)
		j.Record(raw, running, t.Version, hotspec.Refused, err)
		return false
	}
	if u.Refuse != nil {
		return refuse(u.Refuse)
	}
	current, rels, err := u.Node.Releases(ctx)
	var ce *hot.CallError
	if errors.As(err, &ce) {
		if pkg, ierr := u.Task.Inspect(running); ierr == nil && slices.Contains(pkg.AppNames(), "sasl") {
			// The release starts sasl, whose release_handler is not up
			// yet: the node is still booting. Try again shortly.
			return true
		}
		return refuse(fmt.Errorf("release_handler does not answer (%v); the release must include sasl", err))
	}
	if err != nil {
		// The node may still be booting: try again shortly, without
		// recording a failure.
		return true
	}
	if current != t.Version {
		o, err := u.Run(ctx, t, current, rels)
		j.Record(raw, current, t.Version, o, err)
		return false
	}
	u.Task.SetVersion(current)
	if status(rels, current) != "permanent" {
		// Installed, but the upgrade was cut short (the plugin
		// restarted) before it was made permanent: finish it.
		o, err := hotspec.Succeeded, u.Finish(ctx, current)
		if err != nil {
			o = hotspec.Failed
		}
		j.Record(raw, current, current, o, err)
		return false
	}
	// Made permanent, perhaps just before a plugin restart that kept the
	// record from saying so: a restart of the task boots it.
	u.Task.Adopt(current)
	j.Record(raw, current, current, hotspec.Current, nil)
	return false
}

// status returns release_handler's status of version vsn.
func status(rels []hot.Release, vsn string) string {
	for _, r := range rels {
		if r.Version == vsn {
			return r.Status
		}
	}
	return ""
}
