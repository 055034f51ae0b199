package driver

import (
	"fmt"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-driver-beam/nomad-driver-beam/hotspec"
)

// event emits a task event, which Nomad shows in the allocation.
func (d *Driver) event(cfg *drivers.TaskConfig, format string, args ...any) {
	d.eventWith(cfg, nil, format, args...)
}

// eventWith emits a task event with annotations, which Nomad shows as the
// event's details and tools read from the allocation.
func (d *Driver) eventWith(cfg *drivers.TaskConfig, ann map[string]string, format string, args ...any) {
	err := d.eventer.EmitEvent(&drivers.TaskEvent{
		TaskID:      cfg.ID,
		TaskName:    cfg.Name,
		AllocID:     cfg.AllocID,
		Timestamp:   time.Now(),
		Message:     fmt.Sprintf(format, args...),
		Annotations: ann,
	})
	if err != nil {
		d.logger.Warn("failed to emit task event", "error", err)
	}
}

// fail emits a task event for a failed step and returns it as an error.
func (d *Driver) fail(cfg *drivers.TaskConfig, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	d.eventWith(cfg, map[string]string{hotspec.DetailFailed: "true"}, "%s", err.Error())
	return err
}

func progressText(done, total int64) string {
	if total <= 0 {
		return humanBytes(done)
	}
	return fmt.Sprintf("%s of %s (%d%%)", humanBytes(done), humanBytes(total), done*100/total)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
