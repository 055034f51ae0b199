package hotspec

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	good := Target{Version: "1.2.3", Source: "s3://b/k.tar.gz", SHA256: strings.Repeat("a", 64), Rollout: "r1"}
	got, err := Parse(good.Encode())
	if err != nil || !reflect.DeepEqual(got, good) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for raw, want := range map[string]string{
		`{"source": "s3://b/k"}`:            `"version" is missing`,
		`{"version": "1", "sha": "x"}`:      "not a JSON target",
		`{"version": "1", "sha256": "ABC"}`: "64 hex",
		`not json`:                          "not a JSON target",
		`{"version": "1", "source": 7}`:     "not a JSON target",
	} {
		if _, err := Parse(raw); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%s) = %v, want an error with %q", raw, err, want)
		}
	}
}

func TestPick(t *testing.T) {
	items := map[string]string{"a1": ` {"version":"2"} `, AllKey: `{"version":"1"}`, "a2": "  "}
	for alloc, want := range map[string]string{"a1": "a1", "a2": AllKey, "a3": AllKey} {
		if key, _ := Pick(items, alloc); key != want {
			t.Errorf("Pick for %s: key %q, want %q", alloc, key, want)
		}
	}
	if key, raw := Pick(map[string]string{}, "a1"); key != "" || raw != "" {
		t.Errorf("no target: %q %q", key, raw)
	}
	if Path("shop", "web", "node") != "nomad/jobs/shop/web/node" {
		t.Error(Path("shop", "web", "node"))
	}
}

func TestReport(t *testing.T) {
	r := Report{Outcome: Failed, Key: AllKey, Version: "2", From: "1", Took: 1500 * time.Millisecond}
	got, ok := ReportOf(r.Details())
	if !ok || got != r {
		t.Fatalf("round trip: %+v %v", got, ok)
	}
	if _, ok := ReportOf(map[string]string{"other": "x"}); ok {
		t.Error("an event without the outcome detail read as a report")
	}
	if s := (Report{Outcome: Started}).Details(); s[DetailMillis] != "" {
		t.Error("a start reports a duration")
	}
	if !Succeeded.OK() || !Current.OK() || Failed.OK() || Started.Final() || !Refused.Final() {
		t.Error("outcome predicates")
	}
}

func TestParsePreCommands(t *testing.T) {
	tg, err := Parse(`{"version":"2","source":"s3://b/a.tar.gz","pre_commands":[["eval","App.migrate()"],["bin/seed","--all"]]}`)
	if err != nil || len(tg.PreCommands) != 2 || tg.PreCommands[1][1] != "--all" {
		t.Fatalf("%+v, %v", tg, err)
	}
	for _, bad := range []string{
		`{"version":"2","pre_commands":[[]]}`,
		`{"version":"2","pre_commands":[[""]]}`,
		`{"version":"2","pre_commands":[["eval"]]}`,
		`{"version":"2","pre_commands":[["eval","a","b"]]}`,
		`{"version":"2","pre_commands":"eval x"}`,
	} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%s parsed", bad)
		}
	}
}
