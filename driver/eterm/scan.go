package eterm

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
)

type tokKind int

const (
	tokEOF    tokKind = iota
	tokDot            // the '.' that ends a term
	tokPunct          // { } [ ] | , # => << >> / - + and any other symbol
	tokAtom           // text is the atom's name
	tokString         // text is the string's value
	tokInt            // u is the magnitude; a sign is a separate token
	tokFloat          // f is the value
	tokVar            // text is the variable's name
)

type token struct {
	kind   tokKind
	text   string
	u      uint64
	f      float64
	line   int
	quoted bool // for tokAtom: written as '...'
}

const maxAtomLen = 255 // characters; longer atoms are a system limit

// A scanner splits Erlang source text into tokens, the way erl_scan does.
type scanner struct {
	src  []byte
	pos  int
	line int
}

func (s *scanner) errorf(line int, format string, args ...any) error {
	return &SyntaxError{Line: line, Msg: fmt.Sprintf(format, clipArgs(args)...)}
}

// peek returns the rune at the current position, or -1 at the end.
func (s *scanner) peek() rune {
	return s.peekAt(0)
}

// peekAt returns the rune n bytes ahead; only used for ASCII lookahead.
func (s *scanner) peekAt(n int) rune {
	if s.pos+n >= len(s.src) {
		return -1
	}
	r, _ := utf8.DecodeRune(s.src[s.pos+n:])
	return r
}

// read consumes and returns one rune, counting lines.
func (s *scanner) read() (rune, error) {
	if s.pos >= len(s.src) {
		return -1, nil
	}
	r, size := utf8.DecodeRune(s.src[s.pos:])
	if r == utf8.RuneError && size == 1 {
		return 0, s.errorf(s.line, "invalid UTF-8")
	}
	s.pos += size
	if r == '\n' {
		s.line++
	}
	return r, nil
}

func isSpace(r rune) bool {
	return r >= 0 && r <= ' ' || r >= 0x80 && r <= 0xA0
}

func isDigit(r rune) bool { return '0' <= r && r <= '9' }

// isAtomStart and isAtomChar follow erl_scan, which allows Latin-1 letters.
func isAtomStart(r rune) bool {
	return 'a' <= r && r <= 'z' || 0xDF <= r && r <= 0xFF && r != 0xF7
}

func isVarStart(r rune) bool {
	return 'A' <= r && r <= 'Z' || r == '_' || 0xC0 <= r && r <= 0xDE && r != 0xD7
}

func isAtomChar(r rune) bool {
	return isAtomStart(r) || isVarStart(r) || isDigit(r) || r == '@'
}

// next returns the next token, skipping white space and comments.
func (s *scanner) next() (token, error) {
	for {
		r := s.peek()
		switch {
		case r == -1:
			return token{kind: tokEOF, line: s.line}, nil
		case isSpace(r):
			if _, err := s.read(); err != nil {
				return token{}, err
			}
		case r == '%':
			for r := s.peek(); r != -1 && r != '\n'; r = s.peek() {
				if _, err := s.read(); err != nil {
					return token{}, err
				}
			}
		default:
			return s.token()
		}
	}
}

func (s *scanner) token() (token, error) {
	line := s.line
	r := s.peek()
	switch {
	case isDigit(r):
		return s.number()
	case isAtomStart(r), isVarStart(r):
		start := s.pos
		for r := s.peek(); isAtomChar(r); r = s.peek() {
			s.pos += utf8.RuneLen(r)
		}
		name := string(s.src[start:s.pos])
		if isVarStart(r) {
			return token{kind: tokVar, text: name, line: line}, nil
		}
		if utf8.RuneCountInString(name) > maxAtomLen {
			return token{}, s.errorf(line, "atom longer than %d characters", maxAtomLen)
		}
		return token{kind: tokAtom, text: name, line: line}, nil
	case r == '\'' || r == '"':
		s.pos++
		text, err := s.quoted(byte(r), line)
		if err != nil {
			return token{}, err
		}
		if r == '"' {
			return token{kind: tokString, text: text, line: line}, nil
		}
		if utf8.RuneCountInString(text) > maxAtomLen {
			return token{}, s.errorf(line, "atom longer than %d characters", maxAtomLen)
		}
		return token{kind: tokAtom, text: text, line: line, quoted: true}, nil
	case r == '$':
		s.pos++
		c, err := s.char(line)
		if err != nil {
			return token{}, err
		}
		return token{kind: tokInt, u: uint64(c), line: line}, nil
	case r == '.':
		s.pos++
		if next := s.peek(); next == -1 || next == '%' || isSpace(next) {
			return token{kind: tokDot, line: line}, nil
		}
		return token{kind: tokPunct, text: ".", line: line}, nil
	}
	for _, p := range [...]string{"=>", "<<", ">>"} {
		if bytes.HasPrefix(s.src[s.pos:], []byte(p)) {
			s.pos += 2
			return token{kind: tokPunct, text: p, line: line}, nil
		}
	}
	if _, err := s.read(); err != nil {
		return token{}, err
	}
	return token{kind: tokPunct, text: string(r), line: line}, nil
}

// quoted reads the rest of a string or quoted atom after its opening quote.
func (s *scanner) quoted(q byte, line int) (string, error) {
	what := "string"
	if q == '\'' {
		what = "atom"
	}
	var b strings.Builder
	for {
		r, err := s.read()
		if err != nil {
			return "", err
		}
		switch {
		case r == -1:
			return "", s.errorf(line, "unterminated %s", what)
		case r == rune(q):
			return b.String(), nil
		case r == '\\':
			if r, err = s.escape(line, what); err != nil {
				return "", err
			}
		case !isCodePoint(int64(r)):
			return "", s.errorf(s.line, "illegal character U+%04X in %s", r, what)
		}
		b.WriteRune(r)
	}
}

// char reads a character literal after its '$'.
func (s *scanner) char(line int) (rune, error) {
	r, err := s.read()
	switch {
	case err != nil:
		return 0, err
	case r == -1:
		return 0, s.errorf(line, "unterminated character literal")
	case r == '\\':
		return s.escape(line, "character literal")
	case !isCodePoint(int64(r)):
		return 0, s.errorf(line, "illegal character U+%04X", r)
	}
	return r, nil
}

// escape reads an escape sequence after its backslash.
func (s *scanner) escape(line int, what string) (rune, error) {
	r, err := s.read()
	if err != nil {
		return 0, err
	}
	switch r {
	case -1:
		return 0, s.errorf(line, "unterminated %s", what)
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'v':
		return '\v', nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'e':
		return 0x1B, nil
	case 's':
		return ' ', nil
	case 'd':
		return 0x7F, nil
	case '^':
		c, err := s.read()
		if err != nil {
			return 0, err
		}
		if c == -1 {
			return 0, s.errorf(line, "unterminated %s", what)
		}
		return c & 31, nil
	case 'x':
		return s.hexEscape()
	}
	if '0' <= r && r <= '7' {
		v := r - '0'
		for i := 0; i < 2 && '0' <= s.peek() && s.peek() <= '7'; i++ {
			v = v*8 + s.peek() - '0'
			s.pos++
		}
		return v, nil
	}
	if !isCodePoint(int64(r)) {
		return 0, s.errorf(s.line, "illegal character U+%04X in escape", r)
	}
	return r, nil
}

// hexEscape reads the rest of \xHH or \x{H...}.
func (s *scanner) hexEscape() (rune, error) {
	if s.peek() != '{' {
		if hexVal(s.peek()) < 0 || hexVal(s.peekAt(1)) < 0 {
			return 0, s.errorf(s.line, `\x must be followed by two hex digits or {hex digits}`)
		}
		v := hexVal(s.peek())<<4 | hexVal(s.peekAt(1))
		s.pos += 2
		return rune(v), nil
	}
	s.pos++
	v, n := int64(0), 0
	for ; hexVal(s.peek()) >= 0; n++ {
		v = v<<4 | int64(hexVal(s.peek()))
		if v > utf8.MaxRune {
			return 0, s.errorf(s.line, `\x{...} escape is not a Unicode code point`)
		}
		s.pos++
	}
	if n == 0 || s.peek() != '}' {
		return 0, s.errorf(s.line, `malformed \x{...} escape`)
	}
	s.pos++
	if !isCodePoint(v) {
		return 0, s.errorf(s.line, `\x{...} escape is not a Unicode code point`)
	}
	return rune(v), nil
}

func hexVal(r rune) int {
	switch {
	case '0' <= r && r <= '9':
		return int(r - '0')
	case 'a' <= r && r <= 'f':
		return int(r-'a') + 10
	case 'A' <= r && r <= 'F':
		return int(r-'A') + 10
	}
	return -1
}

// digits consumes digits valid in base, with single underscores allowed
// between them, and returns them without the underscores.
func (s *scanner) digits(base int) string {
	var b strings.Builder
	for {
		r := s.peek()
		if digitVal(r) < base {
			b.WriteRune(r)
			s.pos++
			continue
		}
		if r == '_' && b.Len() > 0 && digitVal(s.peekAt(1)) < base {
			s.pos++
			continue
		}
		return b.String()
	}
}

// digitVal returns the value of r as a digit in bases up to 36, or 99.
func digitVal(r rune) int {
	switch {
	case '0' <= r && r <= '9':
		return int(r - '0')
	case 'a' <= r && r <= 'z':
		return int(r-'a') + 10
	case 'A' <= r && r <= 'Z':
		return int(r-'A') + 10
	}
	return 99
}

// number reads an integer, a based integer such as 16#FF, or a float.
func (s *scanner) number() (token, error) {
	line := s.line
	ds := s.digits(10)
	if s.peek() == '#' {
		base, err := strconv.Atoi(ds)
		if err != nil || base < 2 || base > 36 {
			return token{}, s.errorf(line, "invalid integer base %s", ds)
		}
		s.pos++
		bds := s.digits(base)
		if bds == "" {
			return token{}, s.errorf(line, "missing digits after %d#", base)
		}
		u, err := strconv.ParseUint(bds, base, 64)
		if err != nil {
			return token{}, s.errorf(line, "integer %d#%s out of range", base, bds)
		}
		return token{kind: tokInt, u: u, line: line}, nil
	}
	if s.peek() != '.' || !isDigit(s.peekAt(1)) {
		u, err := strconv.ParseUint(ds, 10, 64)
		if err != nil {
			return token{}, s.errorf(line, "integer %s out of range", ds)
		}
		return token{kind: tokInt, u: u, line: line}, nil
	}
	s.pos++
	text := ds + "." + s.digits(10)
	if r := s.peek(); r == 'e' || r == 'E' {
		s.pos++
		text += "e"
		if r := s.peek(); r == '+' || r == '-' {
			s.pos++
			text += string(r)
		}
		exp := s.digits(10)
		if exp == "" {
			return token{}, s.errorf(line, "missing exponent in float %s", text)
		}
		text += exp
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsInf(f, 0) {
		return token{}, s.errorf(line, "float %s out of range", text)
	}
	return token{kind: tokFloat, f: f, line: line}, nil
}

// clipArgs clips the string arguments of a syntax error: they quote the
// text being read, which may come from a hostile release.
func clipArgs(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		if s, ok := a.(string); ok {
			a = release.Clip(s)
		}
		out[i] = a
	}
	return out
}
