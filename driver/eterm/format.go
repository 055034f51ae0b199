package eterm

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Format returns t in Erlang syntax, without a terminating '.', such that
// file:consult/1 and [Parse] read it back as an equal term. Atoms are quoted
// only when they must be. Strings and atoms must hold UTF-8 text.
//
// Format panics if t or a term inside it is not of a type listed for
// [Term], or is a float that is infinite or NaN, which Erlang cannot hold.
func Format(t Term) string {
	return string(appendTerm(nil, t))
}

func appendTerm(buf []byte, t Term) []byte {
	switch t := t.(type) {
	case Atom:
		return appendAtom(buf, t)
	case String:
		return appendQuoted(buf, string(t), '"')
	case Binary:
		return appendBinary(buf, t)
	case int64:
		return strconv.AppendInt(buf, t, 10)
	case float64:
		return appendFloat(buf, t)
	case Tuple:
		buf = append(buf, '{')
		buf = appendElems(buf, t)
		return append(buf, '}')
	case List:
		buf = append(buf, '[')
		buf = appendElems(buf, t)
		return append(buf, ']')
	case ImproperList:
		// Print the list Erlang would build: a list tail extends the
		// elements, and without elements the list is just its tail.
		switch l := joinList(t.Elems, t.Tail).(type) {
		case ImproperList:
			buf = append(buf, '[')
			buf = appendElems(buf, l.Elems)
			buf = append(buf, '|')
			buf = appendTerm(buf, l.Tail)
			return append(buf, ']')
		default:
			return appendTerm(buf, l)
		}
	case Map:
		buf = append(buf, "#{"...)
		for i, p := range t {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendTerm(buf, p.Key)
			buf = append(buf, " => "...)
			buf = appendTerm(buf, p.Value)
		}
		return append(buf, '}')
	}
	panic(fmt.Sprintf("relup: Format of unsupported type %T", t))
}

func appendElems(buf []byte, elems []Term) []byte {
	for i, e := range elems {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendTerm(buf, e)
	}
	return buf
}

// appendAtom writes a, quoted unless it is a plain lowercase name. It also
// quotes maybe and else, reserved words in newer Erlang releases.
func appendAtom(buf []byte, a Atom) []byte {
	if needsQuotes(string(a)) {
		return appendQuoted(buf, string(a), '\'')
	}
	return append(buf, a...)
}

func needsQuotes(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' || reserved[s] || s == "maybe" || s == "else" {
		return true
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '@') {
			return true
		}
	}
	return false
}

// appendQuoted writes s between quote characters q with the escapes Erlang
// reads back.
func appendQuoted(buf []byte, s string, q byte) []byte {
	buf = append(buf, q)
	for _, r := range s {
		switch {
		case r == rune(q) || r == '\\':
			buf = append(buf, '\\', byte(r))
		case r == '\n':
			buf = append(buf, `\n`...)
		case r == '\t':
			buf = append(buf, `\t`...)
		case r == '\r':
			buf = append(buf, `\r`...)
		case r < ' ' || r >= 0x7F && r < 0xA0:
			buf = append(buf, `\x{`...)
			buf = strconv.AppendInt(buf, int64(r), 16)
			buf = append(buf, '}')
		default:
			buf = utf8.AppendRune(buf, r)
		}
	}
	return append(buf, q)
}

// appendBinary writes b as <<"text">> or <<"text"/utf8>> when b is printable
// text, and as <<1,2,3>> otherwise.
func appendBinary(buf []byte, b Binary) []byte {
	if len(b) == 0 {
		return append(buf, "<<>>"...)
	}
	if isText(b) {
		buf = append(buf, "<<"...)
		buf = appendQuoted(buf, string(b), '"')
		if !isASCII(b) {
			buf = append(buf, "/utf8"...)
		}
		return append(buf, ">>"...)
	}
	buf = append(buf, "<<"...)
	for i, c := range b {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = strconv.AppendUint(buf, uint64(c), 10)
	}
	return append(buf, ">>"...)
}

// isText reports whether b is UTF-8 text with no control characters other
// than white space.
func isText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if r < ' ' && r != '\n' && r != '\t' && r != '\r' || r >= 0x7F && r < 0xA0 || !isCodePoint(int64(r)) {
			return false
		}
	}
	return true
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// appendFloat writes f with the decimal point Erlang requires: 1.0 and
// 1.0e+100 rather than Go's 1 and 1e+100.
func appendFloat(buf []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		panic(fmt.Sprintf("relup: Format of float %v, which Erlang cannot represent", f))
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	mant, exp, hasExp := strings.Cut(s, "e")
	if !strings.Contains(mant, ".") {
		mant += ".0"
	}
	buf = append(buf, mant...)
	if hasExp {
		buf = append(buf, 'e')
		buf = append(buf, exp...)
	}
	return buf
}
