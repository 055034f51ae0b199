package main

import "testing"

func TestHCLValue(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0.1.0", `"0.1.0"`},
		{`{HELLO_OPLOG = "/tmp/x"}`, `{HELLO_OPLOG = "/tmp/x"}`},
		{` ["a", "b"] `, `["a", "b"]`},
		{`{not closed`, `"{not closed"`},
		{`say "hi"`, `"say \"hi\""`},
		{`${oops} %{x}`, `"$${oops} %%{x}"`},
	} {
		if got := hclValue(tc.in); got != tc.want {
			t.Errorf("hclValue(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
