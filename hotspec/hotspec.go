// Package hotspec is the contract between the beam driver and the tools
// that drive its hot upgrades: the Nomad Variable that asks for a version
// (its path, its keys, the JSON of a target) and the task events in which
// the driver reports what it did (their detail keys and outcomes).
//
// The driver, beamctl and the e2e tests all use it, so that a change to
// the contract is a compile error in each of them rather than a silent
// mismatch.
package hotspec

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
)

// Target is one key's value in the hot-upgrade Variable: the release
// version an allocation should run.
type Target struct {
	// Version is the release version to run. With no Source it must
	// already be on the node (a hot downgrade to the base release).
	Version string `json:"version"`
	Source  string `json:"source,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
	// Rollout names the rollout that wrote the value. The driver does not
	// retry a value that failed, so a retry must be a new value.
	Rollout string `json:"rollout,omitempty"`
	// PreCommands run in the task, with the new version's code, after the
	// package is on the node and before release_handler installs it: the
	// release's migrations. Each is an argv, such as
	// ["eval", "MyApp.Release.migrate()"], as in the task's pre_commands.
	// Tools set them on the canary's key only, so that they run once per
	// rollout.
	PreCommands [][]string `json:"pre_commands,omitempty"`
}

// maxPreCommands bounds a target's pre-commands.
const maxPreCommands = 16

// AllKey is the Variable key whose target applies to every allocation
// that has no key of its own, so that allocations placed later follow a
// finished rollout. Every other key is an allocation ID.
const AllKey = "all"

// Path is the Variable a task follows unless its hot_upgrade block names
// another: one that the task's workload identity may read by default.
func Path(job, group, task string) string {
	return fmt.Sprintf("nomad/jobs/%s/%s/%s", job, group, task)
}

// Pick returns an allocation's raw target from the Variable's items: its
// own key, else AllKey. An empty key means there is none.
func Pick(items map[string]string, allocID string) (key, raw string) {
	if v := strings.TrimSpace(items[allocID]); v != "" {
		return allocID, v
	}
	if v := strings.TrimSpace(items[AllKey]); v != "" {
		return AllKey, v
	}
	return "", ""
}

var sha256Pattern = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

// Parse decodes and checks one target. Unknown fields are errors, so a
// typo is not silently ignored.
func Parse(raw string) (Target, error) {
	var t Target
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return t, fmt.Errorf(`not a JSON target {"version": …, "source": …, "sha256": …}: %v`, err)
	}
	if t.Version == "" {
		return t, errors.New(`"version" is missing`)
	}
	if !ValidVersion(t.Version) {
		return t, fmt.Errorf(`"version" %q is not a release version (a letter or digit, then letters, digits and . + _ @ ~ -, at most 128)`, clipped(t.Version))
	}
	if t.SHA256 != "" && !sha256Pattern.MatchString(t.SHA256) {
		return t, fmt.Errorf(`"sha256" %q must be 64 hex characters, as printed by sha256sum`, t.SHA256)
	}
	if err := CheckPreCommands(t.PreCommands); err != nil {
		return t, err
	}
	return t, nil
}

// ValidVersion reports whether v can be a release version: it names
// directories, so it is release.ValidName, the driver's one check of names
// read from a release.
func ValidVersion(v string) bool { return release.ValidName(v) }

func clipped(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// CheckPreCommands checks a target's pre-commands, so that tools refuse
// what the driver would.
func CheckPreCommands(cmds [][]string) error {
	if len(cmds) > maxPreCommands {
		return fmt.Errorf(`"pre_commands" holds %d commands; at most %d`, len(cmds), maxPreCommands)
	}
	for i, argv := range cmds {
		switch {
		case len(argv) == 0 || argv[0] == "":
			return fmt.Errorf(`"pre_commands"[%d] is empty; write each as an argv list, such as ["eval", "MyApp.Release.migrate()"]`, i)
		case argv[0] == "eval" && len(argv) != 2:
			return fmt.Errorf(`"pre_commands"[%d]: eval takes exactly one expression, such as ["eval", "MyApp.Release.migrate()"]`, i)
		}
	}
	return nil
}

// Encode returns the target as the Variable stores it.
func (t Target) Encode() string {
	b, _ := json.Marshal(t)
	return string(b)
}

// DetailNode is the detail of the driver's start event that holds the
// node's full name (name@host): how the nodes of a job find each other's
// names, whatever node_name each was given.
const DetailNode = "beam.node"

// The details of the driver's task events about hot upgrades.
const (
	// DetailOutcome holds an Outcome.
	DetailOutcome = "beam.hot"
	// DetailKey is the Variable key the target came from.
	DetailKey = "beam.hot.key"
	// DetailVersion is the target version, DetailFrom the one before.
	DetailVersion = "beam.hot.version"
	DetailFrom    = "beam.hot.from"
	// DetailMillis is how long the upgrade took, in milliseconds; set on
	// every outcome but Started.
	DetailMillis = "beam.hot.ms"
	// DetailFailed marks any driver event that reports a failure that
	// stops the task (fetch, unpack, pre-command, start), with "true".
	DetailFailed = "beam.failed"
	// DetailStage names the step an upgrade ended in when it is not
	// release_handler's: StagePreCommand for a target's pre-command.
	DetailStage = "beam.hot.stage"
)

// StagePreCommand is the DetailStage of an upgrade that a failing
// pre-command refused: a fallback must not run that command again.
const StagePreCommand = "pre-command"

// Outcome is how a hot upgrade ended, or that it started.
type Outcome string

// Outcomes of a hot upgrade.
const (
	Started   Outcome = "started"
	Succeeded Outcome = "succeeded"
	Refused   Outcome = "refused" // checked before touching the node: untouched
	Failed    Outcome = "failed"  // failed on the node: it serves the old version
	Current   Outcome = "current" // the node already ran the target
	Invalid   Outcome = "invalid" // the Variable's value cannot be read
)

// OK reports whether the allocation runs the target after this outcome.
func (o Outcome) OK() bool { return o == Succeeded || o == Current }

// Final reports whether the outcome ends an upgrade.
func (o Outcome) Final() bool { return o != "" && o != Started }

// Report is what one task event says about a hot upgrade.
type Report struct {
	Outcome       Outcome
	Key           string
	Version, From string
	Took          time.Duration
	// Stage is where a refusal or failure came from, when not
	// release_handler: StagePreCommand.
	Stage string
}

// ReportOf reads a task event's details; ok is false for events that are
// not about a hot upgrade.
func ReportOf(details map[string]string) (r Report, ok bool) {
	o := Outcome(details[DetailOutcome])
	if o == "" {
		return Report{}, false
	}
	ms, _ := strconv.ParseInt(details[DetailMillis], 10, 64)
	return Report{Outcome: o, Key: details[DetailKey], Version: details[DetailVersion], From: details[DetailFrom],
		Took: time.Duration(ms) * time.Millisecond, Stage: details[DetailStage]}, true
}

// Details returns the details of a task event that reports r.
func (r Report) Details() map[string]string {
	d := map[string]string{DetailOutcome: string(r.Outcome), DetailKey: r.Key, DetailVersion: r.Version, DetailFrom: r.From}
	if r.Outcome != Started {
		d[DetailMillis] = strconv.FormatInt(r.Took.Milliseconds(), 10)
	}
	if r.Stage != "" {
		d[DetailStage] = r.Stage
	}
	return d
}
