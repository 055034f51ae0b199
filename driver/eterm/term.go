package eterm

import (
	"fmt"
	"unicode/utf8"
)

// Term is an Erlang term read by [Parse] or written by [Format]. Its dynamic
// type is one of:
//
//   - [Atom], for atoms such as ok and 'Elixir.Foo';
//   - [String], for a double-quoted string literal;
//   - [Binary], for <<"...">> and <<1,2,3>>;
//   - [Tuple], [List], [ImproperList] and [Map];
//   - int64, for integers and character literals such as $a;
//   - float64, for floats.
//
// Erlang has no string type: "abc" and [97,98,99] are the same list. Parse
// keeps the form the text used, and [AsString], [AsList] and [Equal] treat
// both forms alike.
type Term any

// Atom is an Erlang atom.
type Atom string

// String is an Erlang string literal, "..." in source. It holds UTF-8 text;
// each rune is one element of the Erlang list.
type String string

// Binary is an Erlang binary, <<...>> in source.
type Binary []byte

// Tuple is an Erlang tuple, {...} in source.
type Tuple []Term

// List is a proper Erlang list, [...] in source.
type List []Term

// ImproperList is a list whose last tail is not a list, [a,b|c] in source.
type ImproperList struct {
	Elems []Term
	Tail  Term
}

// Map is an Erlang map, #{...} in source. Parse keeps the pairs in source
// order and keeps the last value of a repeated key, as Erlang does.
type Map []MapPair

// MapPair is one association of a [Map].
type MapPair struct {
	Key, Value Term
}

// SyntaxError reports text that is not a sequence of Erlang terms.
type SyntaxError struct {
	File string // file the text came from; empty for Parse
	Line int    // 1-based line of the error
	Msg  string // description of the problem
}

func (e *SyntaxError) Error() string {
	if e.File != "" {
		return fmt.Sprintf("relup: %s: line %d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("relup: line %d: %s", e.Line, e.Msg)
}

// AsString returns the text of t if t is an Erlang string: a [String], a
// [List] of integers that are Unicode code points (the empty list is the
// empty string), or a [Binary] holding UTF-8 text.
func AsString(t Term) (string, bool) {
	switch t := t.(type) {
	case String:
		return string(t), true
	case Binary:
		if !utf8.Valid(t) {
			return "", false
		}
		return string(t), true
	case List:
		buf := make([]byte, 0, len(t))
		for _, e := range t {
			c, ok := e.(int64)
			if !ok || !isCodePoint(c) {
				return "", false
			}
			buf = utf8.AppendRune(buf, rune(c))
		}
		return string(buf), true
	}
	return "", false
}

// AsList returns the elements of t if t is a proper list: a [List], or a
// [String], whose elements are its code points as int64.
func AsList(t Term) ([]Term, bool) {
	switch t := t.(type) {
	case List:
		return t, true
	case String:
		return stringElems(t), true
	}
	return nil, false
}

// Equal reports whether a and b are the same Erlang term, as the Erlang
// operator =:= does: a [String] equals the [List] of its code points, nil
// and empty slices are equal, the order of [Map] pairs does not matter, and
// an integer never equals a float. An [ImproperList] whose tail is a list
// equals the proper list Erlang would build.
func Equal(a, b Term) bool {
	a, b = canonical(a), canonical(b)
	switch a := a.(type) {
	case Atom:
		b, ok := b.(Atom)
		return ok && a == b
	case int64:
		b, ok := b.(int64)
		return ok && a == b
	case float64:
		b, ok := b.(float64)
		return ok && a == b
	case Binary:
		b, ok := b.(Binary)
		return ok && string(a) == string(b)
	case Tuple:
		b, ok := b.(Tuple)
		return ok && equalSlices(a, b)
	case List:
		b, ok := b.(List)
		return ok && equalSlices(a, b)
	case ImproperList:
		b, ok := b.(ImproperList)
		return ok && equalSlices(a.Elems, b.Elems) && Equal(a.Tail, b.Tail)
	case Map:
		b, ok := b.(Map)
		if !ok || len(a) != len(b) {
			return false
		}
		for _, p := range a {
			v, found := b.get(p.Key)
			if !found || !Equal(p.Value, v) {
				return false
			}
		}
		return true
	}
	return false
}

func equalSlices(a, b []Term) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// canonical returns a String as a List and an ImproperList as the list
// Erlang builds from it.
func canonical(t Term) Term {
	switch t := t.(type) {
	case String:
		return List(stringElems(t))
	case ImproperList:
		return joinList(t.Elems, t.Tail)
	}
	return t
}

// get returns the value of key in m.
func (m Map) get(key Term) (Term, bool) {
	for _, p := range m {
		if Equal(p.Key, key) {
			return p.Value, true
		}
	}
	return nil, false
}

func stringElems(s String) []Term {
	elems := make([]Term, 0, len(s))
	for _, r := range string(s) {
		elems = append(elems, int64(r))
	}
	return elems
}

// isCodePoint reports whether c may appear in Erlang source text and
// strings; erl_scan rejects surrogates and U+FFFE and U+FFFF.
func isCodePoint(c int64) bool {
	return c >= 0 && c < 0xD800 ||
		c > 0xDFFF && c < 0xFFFE ||
		c > 0xFFFF && c <= utf8.MaxRune
}

// Tagged returns t as a tuple of size elements whose first is the atom tag.
func Tagged(t Term, tag Atom, size int) (Tuple, bool) {
	tup, ok := t.(Tuple)
	if !ok || len(tup) != size {
		return nil, false
	}
	if a, ok := tup[0].(Atom); !ok || a != tag {
		return nil, false
	}
	return tup, true
}
