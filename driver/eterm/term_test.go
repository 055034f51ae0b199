package eterm

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want []Term
	}{
		{"", []Term{}},
		{"%% coding: utf-8\n", []Term{}},
		{"ok.", []Term{Atom("ok")}},
		{"a. b.\n", []Term{Atom("a"), Atom("b")}},
		{"a.%comment", []Term{Atom("a")}},
		{"'Elixir.Foo'.", []Term{Atom("Elixir.Foo")}},
		{`'a\'b\\c\n'.`, []Term{Atom("a'b\\c\n")}},
		{"'end'.", []Term{Atom("end")}},
		{"node@host.", []Term{Atom("node@host")}},
		{"maybe. else.", []Term{Atom("maybe"), Atom("else")}},
		{"é.", []Term{Atom("é")}},
		{`"".`, []Term{String("")}},
		{`"a" "b"  "c".`, []Term{String("abc")}},
		{`"\n\t\\\"\'\s\d\e\z".`, []Term{String("\n\t\\\"' \x7f\x1bz")}},
		{`"\123\0\12x".`, []Term{String("S\x00\nx")}},
		{`"\x{41}\xFF\x{1F600}".`, []Term{String("Aÿ😀")}},
		{`"\^a\^Z".`, []Term{String("\x01\x1a")}},
		{"\"line\\\nbreak\".", []Term{String("line\nbreak")}},
		{`"héllo".`, []Term{String("héllo")}},
		{"<<>>. << >>.", []Term{Binary{}, Binary{}}},
		{`<<"abc">>.`, []Term{Binary("abc")}},
		{`<<"a" "b">>.`, []Term{Binary("ab")}},
		{`<<"é">>.`, []Term{Binary{0xE9}}},
		{`<<"€"/utf8>>.`, []Term{Binary("€")}},
		{`<<"a"/utf8, 8364/utf8, 1>>.`, []Term{Binary("a€\x01")}},
		{`<<1,"ab",255,256,-1>>.`, []Term{Binary{1, 'a', 'b', 255, 0, 255}}},
		{"42.", []Term{int64(42)}},
		{"-42. +42. - 7.", []Term{int64(-42), int64(42), int64(-7)}},
		{"1_000_000.", []Term{int64(1000000)}},
		{"16#FF. 16#ff. 2#1010. 36#zZ. -16#10.", []Term{int64(255), int64(255), int64(10), int64(1295), int64(-16)}},
		{"9223372036854775807. -9223372036854775808.", []Term{int64(math.MaxInt64), int64(math.MinInt64)}},
		{"$a. $\\n. $ . $%. $\\x{263A}. -$a.", []Term{int64('a'), int64('\n'), int64(' '), int64('%'), int64(0x263A), int64(-'a')}},
		{"1.5. -0.25. 1.0e10. 2.5E-3. 1_0.5.", []Term{1.5, -0.25, 1e10, 2.5e-3, 10.5}},
		{"{}.", []Term{Tuple{}}},
		{"{a, {b, \"c\"}}.", []Term{Tuple{Atom("a"), Tuple{Atom("b"), String("c")}}}},
		{"[].", []Term{List{}}},
		{"[1, [2], []].", []Term{List{int64(1), List{int64(2)}, List{}}}},
		{"[a|b].", []Term{ImproperList{Elems: []Term{Atom("a")}, Tail: Atom("b")}}},
		{"[a,b|c].", []Term{ImproperList{Elems: []Term{Atom("a"), Atom("b")}, Tail: Atom("c")}}},
		{"[a|[b,c]]. [1|\"ab\"]. [a|[]].", []Term{
			List{Atom("a"), Atom("b"), Atom("c")},
			List{int64(1), int64('a'), int64('b')},
			List{Atom("a")},
		}},
		{"[a|[b|c]].", []Term{ImproperList{Elems: []Term{Atom("a"), Atom("b")}, Tail: Atom("c")}}},
		{"#{}. # {}.", []Term{Map{}, Map{}}},
		{"#{a => 1, \"k\" => [x]}.", []Term{Map{{Atom("a"), int64(1)}, {String("k"), List{Atom("x")}}}}},
		{"#{a => 1, b => 2, a => 3}.", []Term{Map{{Atom("a"), int64(3)}, {Atom("b"), int64(2)}}}},
		{"#{a=><<>>}.", []Term{Map{{Atom("a"), Binary{}}}}},
		{"{a,\n\t b}.\r\n", []Term{Tuple{Atom("a"), Atom("b")}}},
	}
	for _, tt := range tests {
		got, err := Parse([]byte(tt.in))
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%q)\n got %#v\nwant %#v", tt.in, got, tt.want)
		}
	}
}

const relupText = `%% coding: utf-8
{"0.2.0",
 [{"0.1.0",[],
   [{load_object_code,{hello_ex,"0.2.0",['Elixir.HelloEx.Counter']}},
    point_of_no_return,
    {suspend,['Elixir.HelloEx.Counter']},
    {load,{'Elixir.HelloEx.Counter',brutal_purge,brutal_purge}},
    {code_change,up,[{'Elixir.HelloEx.Counter',[]}]},
    {resume,['Elixir.HelloEx.Counter']}]}],
 [{"0.1.0",[],
   [{load_object_code,{hello_ex,"0.1.0",['Elixir.HelloEx.Counter']}},
    point_of_no_return,
    {suspend,['Elixir.HelloEx.Counter']},
    {code_change,down,[{'Elixir.HelloEx.Counter',[]}]},
    {load,{'Elixir.HelloEx.Counter',brutal_purge,brutal_purge}},
    {resume,['Elixir.HelloEx.Counter']}]}]}.
`

func TestParseRelup(t *testing.T) {
	counter := Atom("Elixir.HelloEx.Counter")
	mods := List{counter}
	script := func(vsn string, load, change Term) List {
		return List{
			Tuple{Atom("load_object_code"), Tuple{Atom("hello_ex"), String(vsn), mods}},
			Atom("point_of_no_return"),
			Tuple{Atom("suspend"), mods},
			load, change,
			Tuple{Atom("resume"), mods},
		}
	}
	load := Tuple{Atom("load"), Tuple{counter, Atom("brutal_purge"), Atom("brutal_purge")}}
	change := func(dir Atom) Term {
		return Tuple{Atom("code_change"), dir, List{Tuple{counter, List{}}}}
	}
	want := []Term{Tuple{
		String("0.2.0"),
		List{Tuple{String("0.1.0"), List{}, script("0.2.0", load, change("up"))}},
		List{Tuple{String("0.1.0"), List{}, script("0.1.0", change("down"), load)}},
	}}
	got, err := Parse([]byte(relupText))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse(relup)\n got %s\nwant %s", Format(got[0]), Format(want[0]))
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"{a,\n b,\n}.", "relup: line 3: unexpected '}'"},
		{"{a, b}", "relup: line 1: missing '.' after the last term"},
		{"{a, b", "relup: line 1: unexpected end of input"},
		{"{a.\n", "relup: line 1: unexpected '.'"},
		{"a.b.", "relup: line 1: unexpected '.'"},
		{"'it''s'.", "relup: line 1: unexpected atom s"},
		{"\n\n\"abc.\n", "relup: line 3: unterminated string"},
		{"'abc", "relup: line 1: unterminated atom"},
		{"[X].", "relup: line 1: unexpected variable X"},
		{"{_}.", "relup: line 1: unexpected variable _"},
		{"end.", "relup: line 1: unexpected reserved word end"},
		{"{a}\n.b", "relup: line 2: unexpected '.'"},
		{"[|a].", "relup: line 1: unexpected '|'"},
		{"[a|b,c].", "relup: line 1: unexpected ','"},
		{"#{a}.", "relup: line 1: unexpected '}'"},
		{"#[a].", "relup: line 1: unexpected '['"},
		{"- a.", "relup: line 1: unexpected atom a"},
		{"--1.", "relup: line 1: unexpected '-'"},
		{"1e5.", "relup: line 1: unexpected atom e5"},
		{"1.0e.", "relup: line 1: missing exponent in float 1.0e"},
		{"1.0e999.", "relup: line 1: float 1.0e999 out of range"},
		{"9223372036854775808.", "relup: line 1: integer out of range"},
		{"99999999999999999999.", "relup: line 1: integer 99999999999999999999 out of range"},
		{"37#1.", "relup: line 1: invalid integer base 37"},
		{"16#.", "relup: line 1: missing digits after 16#"},
		{`"\x{110000}".`, `relup: line 1: \x{...} escape is not a Unicode code point`},
		{`"\x{D800}".`, `relup: line 1: \x{...} escape is not a Unicode code point`},
		{`"\xZZ".`, `relup: line 1: \x must be followed by two hex digits or {hex digits}`},
		{`"\x{41".`, `relup: line 1: malformed \x{...} escape`},
		{"\"\xff\".", "relup: line 1: invalid UTF-8"},
		{"$", "relup: line 1: unterminated character literal"},
		{`<<"a"/binary>>.`, "relup: line 1: unsupported binary segment type atom binary"},
		{`<<1/utf8/utf8>>.`, "relup: line 1: unexpected '/'"},
		{`<<1/binary>>.`, "relup: line 1: unsupported binary segment type atom binary"},
		{`<<16#D800/utf8>>.`, "relup: line 1: 55296 is not a Unicode code point"},
		{"<<a>>.", "relup: line 1: unexpected atom a"},
		{"a = b.", "relup: line 1: unexpected '='"},
		{"'" + strings.Repeat("a", 256) + "'.", "relup: line 1: atom longer than 255 characters"},
		{strings.Repeat("[", 1002), "relup: line 1: terms nested deeper than 1000 levels"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.in))
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want error %q", tt.in, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("Parse(%q) error\n got %q\nwant %q", tt.in, err, tt.want)
		}
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) error %T is not a *SyntaxError", tt.in, err)
		}
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		in   Term
		want string
	}{
		{Atom("ok"), "ok"},
		{Atom("node@host_1"), "node@host_1"},
		{Atom("Elixir.Foo"), "'Elixir.Foo'"},
		{Atom(""), "''"},
		{Atom("end"), "'end'"},
		{Atom("maybe"), "'maybe'"},
		{Atom("_x"), "'_x'"},
		{Atom("a b"), "'a b'"},
		{Atom("é"), "'é'"},
		{Atom(`it's \`), `'it\'s \\'`},
		{String(""), `""`},
		{String("say \"hi\"\n\t\r"), `"say \"hi\"\n\t\r"`},
		{String("it's"), `"it's"`},
		{String("\x00\x1b\x7f\u0085 é😀"), `"\x{0}\x{1b}\x{7f}\x{85} é😀"`},
		{Binary{}, "<<>>"},
		{Binary(nil), "<<>>"},
		{Binary("abc\n"), `<<"abc\n">>`},
		{Binary("€"), `<<"€"/utf8>>`},
		{Binary{0, 1, 255}, "<<0,1,255>>"},
		{int64(-12), "-12"},
		{int64(math.MinInt64), "-9223372036854775808"},
		{1.0, "1.0"},
		{-0.5, "-0.5"},
		{1e21, "1.0e+21"},
		{1.5e-7, "1.5e-07"},
		{math.Copysign(0, -1), "-0.0"},
		{Tuple{}, "{}"},
		{Tuple{Atom("a"), int64(1)}, "{a,1}"},
		{List(nil), "[]"},
		{List{String("a"), List{}}, `["a",[]]`},
		{ImproperList{Elems: []Term{Atom("a")}, Tail: Atom("b")}, "[a|b]"},
		{ImproperList{Elems: []Term{Atom("a")}, Tail: List{Atom("b")}}, "[a,b]"},
		{ImproperList{Elems: []Term{Atom("a")}, Tail: String("b")}, "[a,98]"},
		{ImproperList{Tail: Atom("b")}, "b"},
		{Map{}, "#{}"},
		{Map{{Atom("a"), int64(1)}, {String("b"), Tuple{}}}, `#{a => 1,"b" => {}}`},
	}
	for _, tt := range tests {
		if got := Format(tt.in); got != tt.want {
			t.Errorf("Format(%#v) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestFormatPanics(t *testing.T) {
	for _, in := range []Term{42, "text", nil, math.Inf(1), math.NaN(), List{Tuple{uint8(1)}}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Format(%#v) did not panic", in)
				}
			}()
			Format(in)
		}()
	}
}

func TestRoundTrip(t *testing.T) {
	terms := []Term{
		Atom("ok"), Atom("Elixir.HelloEx.Counter"), Atom("end"), Atom("else"), Atom(""),
		Atom("with\nnewline"), Atom("ünïcödé"), Atom("'\\"),
		String(""), String("plain"), String("\"quoted\" \\ back"), String("\x01\x7f\u0080\u00a0 ok"),
		String("日本語 😀"),
		Binary{}, Binary("text"), Binary("naïve"), Binary{0, 10, 200, 255}, Binary("\xff\xfe"),
		int64(0), int64(-1), int64(math.MaxInt64), int64(math.MinInt64),
		0.0, 0.1, -1.5, 1e300, 5e-324, math.MaxFloat64, 123456789.0,
		Tuple{}, Tuple{Tuple{Tuple{}}},
		List{}, List{List{List{}}}, List{int64(1), String("a"), Binary("b")},
		ImproperList{Elems: []Term{int64(1), int64(2)}, Tail: int64(3)},
		ImproperList{Elems: []Term{Atom("a")}, Tail: List{Atom("b")}},
		Map{}, Map{{Map{}, Map{{List{}, Tuple{}}}}, {int64(-1), -1.0}},
		Tuple{Atom("release"), String("x"), List{Tuple{Atom("kernel"), String("8.5.3"), String("/a b/lib")}}, Atom("permanent")},
	}
	for _, term := range terms {
		text := Format(term)
		got, err := Parse([]byte(text + ".\n"))
		if err != nil {
			t.Errorf("Parse(Format(%#v)) = Parse(%s): %v", term, text, err)
			continue
		}
		if len(got) != 1 || !Equal(got[0], term) {
			t.Errorf("Parse(%s) = %#v, want %#v", text, got, term)
		}
	}
}

func TestAsString(t *testing.T) {
	tests := []struct {
		in   Term
		want string
		ok   bool
	}{
		{String("0.2.0"), "0.2.0", true},
		{List{int64('h'), int64('é'), int64(0x1F600)}, "hé😀", true},
		{List{}, "", true},
		{Binary("bin"), "bin", true},
		{Binary{0xff}, "", false},
		{List{int64(0xD800)}, "", false},
		{List{int64(-1)}, "", false},
		{List{Atom("a")}, "", false},
		{Atom("atom"), "", false},
		{int64(1), "", false},
	}
	for _, tt := range tests {
		got, ok := AsString(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("AsString(%#v) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestAsList(t *testing.T) {
	tests := []struct {
		in   Term
		want []Term
		ok   bool
	}{
		{List{Atom("a")}, []Term{Atom("a")}, true},
		{String("ab"), []Term{int64('a'), int64('b')}, true},
		{String(""), []Term{}, true},
		{ImproperList{Elems: []Term{Atom("a")}, Tail: Atom("b")}, nil, false},
		{Tuple{}, nil, false},
		{Binary("ab"), nil, false},
	}
	for _, tt := range tests {
		got, ok := AsList(tt.in)
		if ok != tt.ok || !reflect.DeepEqual(got, tt.want) && len(got)+len(tt.want) > 0 {
			t.Errorf("AsList(%#v) = %#v, %v; want %#v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestEqual(t *testing.T) {
	tests := []struct {
		a, b Term
		want bool
	}{
		{String("ab"), List{int64('a'), int64('b')}, true},
		{String(""), List(nil), true},
		{List{}, List(nil), true},
		{Binary{}, Binary(nil), true},
		{Binary("a"), String("a"), false},
		{int64(1), 1.0, false},
		{Atom("a"), String("a"), false},
		{Tuple{int64(1)}, List{int64(1)}, false},
		{Map{{Atom("a"), int64(1)}, {Atom("b"), int64(2)}}, Map{{Atom("b"), int64(2)}, {Atom("a"), int64(1)}}, true},
		{Map{{Atom("a"), int64(1)}}, Map{{Atom("a"), int64(2)}}, false},
		{Map{{Atom("a"), int64(1)}}, Map{{Atom("b"), int64(1)}}, false},
		{ImproperList{Elems: []Term{Atom("a")}, Tail: Atom("b")}, ImproperList{Elems: []Term{Atom("a")}, Tail: Atom("b")}, true},
		{ImproperList{Elems: []Term{Atom("a")}, Tail: Atom("b")}, ImproperList{Elems: []Term{Atom("a")}, Tail: Atom("c")}, false},
		{nil, nil, false},
	}
	for _, tt := range tests {
		if got := Equal(tt.a, tt.b); got != tt.want {
			t.Errorf("Equal(%#v, %#v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := Equal(tt.b, tt.a); got != tt.want {
			t.Errorf("Equal(%#v, %#v) = %v, want %v", tt.b, tt.a, got, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		relupText,
		"{release,{\"hello\",\"0.1.0\"},{erts,\"13.1.5\"},[{kernel,\"8.5.3\"},{mnesia,\"4.21\",load}]}.",
		"[{release,\"x\",\"1\",\"13\",[{kernel,\"8\",\"/lib/kernel-8\"}],permanent}].\n",
		"#{a => [1|2], <<\"b\">> => {-1.5e-3, $\\n, 16#FF}}.",
		"'quoted\\'atom'. \"str\\x{263A}\" \"cat\". <<1,2,\"x\"/utf8>>.",
		"%% comment\n[].  % trailing\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		terms, err := Parse(data)
		if err != nil {
			return
		}
		for _, term := range terms {
			text := Format(term)
			again, err := Parse([]byte(text + ".\n"))
			if err != nil {
				t.Fatalf("Parse(Format(%#v)) = Parse(%q): %v", term, text, err)
			}
			if len(again) != 1 || !reflect.DeepEqual(again[0], term) {
				t.Fatalf("Parse(Format(%#v)) = %#v", term, again)
			}
		}
	})
}
