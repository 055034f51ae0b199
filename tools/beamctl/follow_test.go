package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestFollowRefusesHTTPPointer(t *testing.T) {
	for p, ok := range map[string]bool{"http://deploys/current.json": false, "HTTP://x/y": false,
		"https://deploys/current.json": true, "s3://b/k": true, "/srv/p.json": true} {
		if err := checkPointer(p, false); (err == nil) != ok {
			t.Errorf("%s: %v", p, err)
		}
	}
	if err := checkPointer("http://deploys/current.json", true); err != nil {
		t.Errorf("with -insecure-pointer: %v", err)
	}
	var out, errb bytes.Buffer
	code := runFollow([]string{"-job", "shop", "-pointer", "http://deploys.example/current.json", "-once"}, &out, &errb)
	if code != exitUsage || !strings.Contains(errb.String(), "-insecure-pointer") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}
