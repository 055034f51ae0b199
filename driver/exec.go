package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/consul-template/signals"

	"github.com/hashicorp/nomad/plugins/drivers"
	dproto "github.com/hashicorp/nomad/plugins/drivers/proto"
)

// ExecTask runs a command in the task's environment, from the release root.
func (d *Driver) ExecTask(taskID string, cmd []string, timeout time.Duration) (*drivers.ExecTaskResult, error) {
	if len(cmd) == 0 {
		return nil, errors.New("error cmd must have at least one value")
	}
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	if len(cmd) == 1 && cmd[0] == HealthCommand {
		return d.health(h, timeout), nil
	}
	box, err := d.execSpec(h, cmd)
	if err != nil {
		return nil, err
	}
	bin, err := sandboxBinary()
	if err != nil {
		return nil, err
	}
	out, exitCode, err := h.exec.Exec(time.Now().Add(timeout), bin, box.Args())
	if err != nil {
		return nil, err
	}
	return &drivers.ExecTaskResult{
		Stdout:     out,
		ExitResult: &drivers.ExitResult{ExitCode: exitCode},
	}, nil
}

// ExecTaskStreamingRaw runs an interactive command, such as `bin/APP
// remote`, for `nomad alloc exec`. The executor reports the exit code on the
// stream itself.
func (d *Driver) ExecTaskStreamingRaw(ctx context.Context, taskID string, command []string, tty bool, stream drivers.ExecTaskStream) error {
	if len(command) == 0 {
		return errors.New("error cmd must have at least one value")
	}
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return drivers.ErrTaskNotFound
	}
	if len(command) == 1 && command[0] == HealthCommand {
		// `nomad alloc exec ALLOC beam-health` shows what the check sees.
		res := d.health(h, 10*time.Second)
		if err := stream.Send(&drivers.ExecTaskStreamingResponseMsg{
			Stdout: &dproto.ExecTaskStreamingIOOperation{Data: res.Stdout},
		}); err != nil {
			return err
		}
		return stream.Send(&drivers.ExecTaskStreamingResponseMsg{
			Exited: true,
			Result: &dproto.ExitResult{ExitCode: int32(res.ExitResult.ExitCode)},
		})
	}
	box, err := d.execSpec(h, command)
	if err != nil {
		return err
	}
	bin, err := sandboxBinary()
	if err != nil {
		return err
	}
	return h.exec.ExecStreaming(ctx, append([]string{bin}, box.Args()...), tty, stream)
}

// signalByName turns Nomad's signal name into the signal, with the table
// Nomad's own executor uses.
func signalByName(name string) (os.Signal, error) {
	sig, ok := signals.SignalLookup[name]
	if !ok {
		return nil, fmt.Errorf("unknown signal %q", name)
	}
	return sig, nil
}
