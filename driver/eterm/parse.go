package eterm

import (
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// maxDepth bounds the nesting of parsed terms.
const maxDepth = 1000

// reserved holds the words erl_scan never reads as unquoted atoms.
var reserved = map[string]bool{
	"after": true, "and": true, "andalso": true, "band": true, "begin": true,
	"bnot": true, "bor": true, "bsl": true, "bsr": true, "bxor": true,
	"case": true, "catch": true, "cond": true, "div": true, "end": true,
	"fun": true, "if": true, "let": true, "not": true, "of": true, "or": true,
	"orelse": true, "receive": true, "rem": true, "try": true, "when": true,
	"xor": true,
}

// Parse reads the terms in data the way Erlang's file:consult/1 does: zero
// or more terms, each followed by a '.' and white space or the end of the
// data. Comments run from '%' to the end of the line. data must be UTF-8,
// the default encoding of Erlang source files.
//
// Parse reads every term file:consult/1 reads, except integers that do not
// fit in an int64, binary segments other than strings and integers with an
// optional /utf8 type, and expressions such as -(1). A [*SyntaxError]
// reports where data is malformed.
func Parse(data []byte) ([]Term, error) {
	p := &parser{s: scanner{src: data, line: 1}}
	if err := p.advance(); err != nil {
		return nil, err
	}
	terms := []Term{}
	for p.tok.kind != tokEOF {
		t, err := p.term(0)
		if err != nil {
			return nil, err
		}
		if p.tok.kind != tokDot {
			if p.tok.kind == tokEOF {
				return nil, p.s.errorf(p.tok.line, "missing '.' after the last term")
			}
			return nil, p.unexpected()
		}
		terms = append(terms, t)
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
	return terms, nil
}

type parser struct {
	s   scanner
	tok token // the current token
}

func (p *parser) advance() error {
	tok, err := p.s.next()
	if err != nil {
		return err
	}
	p.tok = tok
	return nil
}

// describe names tok for an error message.
func (tok token) describe() string {
	switch tok.kind {
	case tokEOF:
		return "end of input"
	case tokDot:
		return "'.'"
	case tokAtom:
		return "atom " + string(appendAtom(nil, Atom(tok.text)))
	case tokString:
		return "string"
	case tokInt:
		return "integer " + strconv.FormatUint(tok.u, 10)
	case tokFloat:
		return "float"
	case tokVar:
		return "variable " + tok.text
	}
	return "'" + tok.text + "'"
}

func (p *parser) unexpected() error {
	return p.s.errorf(p.tok.line, "unexpected %s", p.tok.describe())
}

func (p *parser) isPunct(text string) bool {
	return p.tok.kind == tokPunct && p.tok.text == text
}

// expect consumes the punctuation text or fails.
func (p *parser) expect(text string) error {
	if !p.isPunct(text) {
		return p.unexpected()
	}
	return p.advance()
}

// term parses one term starting at the current token and leaves the token
// after it current.
func (p *parser) term(depth int) (Term, error) {
	if depth > maxDepth {
		return nil, p.s.errorf(p.tok.line, "terms nested deeper than %d levels", maxDepth)
	}
	tok := p.tok
	switch tok.kind {
	case tokAtom:
		if !tok.quoted && reserved[tok.text] {
			return nil, p.s.errorf(tok.line, "unexpected reserved word %s", tok.text)
		}
		return Atom(tok.text), p.advance()
	case tokString:
		s, err := p.stringLits()
		return String(s), err
	case tokInt, tokFloat:
		return p.number(false)
	case tokPunct:
		switch tok.text {
		case "-", "+":
			if err := p.advance(); err != nil {
				return nil, err
			}
			if p.tok.kind != tokInt && p.tok.kind != tokFloat {
				return nil, p.unexpected()
			}
			return p.number(tok.text == "-")
		case "{":
			elems, err := p.seq(depth, "}")
			return Tuple(elems), err
		case "[":
			return p.list(depth)
		case "#":
			if err := p.advance(); err != nil {
				return nil, err
			}
			if !p.isPunct("{") {
				return nil, p.unexpected()
			}
			return p.mapBody(depth)
		case "<<":
			return p.binary()
		}
	}
	return nil, p.unexpected()
}

// stringLits reads adjacent string literals, which Erlang concatenates.
func (p *parser) stringLits() (string, error) {
	s := ""
	for p.tok.kind == tokString {
		s += p.tok.text
		if err := p.advance(); err != nil {
			return "", err
		}
	}
	return s, nil
}

// number converts the current number token, negated if neg.
func (p *parser) number(neg bool) (Term, error) {
	tok := p.tok
	if err := p.advance(); err != nil {
		return nil, err
	}
	if tok.kind == tokFloat {
		if neg {
			return -tok.f, nil
		}
		return tok.f, nil
	}
	switch {
	case neg && tok.u <= 1<<63:
		return int64(-tok.u), nil // wraps correctly for -1<<63
	case !neg && tok.u <= math.MaxInt64:
		return int64(tok.u), nil
	}
	return nil, p.s.errorf(tok.line, "integer out of range")
}

// seq parses comma-separated terms after an opening token, up to close.
func (p *parser) seq(depth int, close string) ([]Term, error) {
	if err := p.advance(); err != nil {
		return nil, err
	}
	elems := []Term{}
	if p.isPunct(close) {
		return elems, p.advance()
	}
	for {
		t, err := p.term(depth + 1)
		if err != nil {
			return nil, err
		}
		elems = append(elems, t)
		if !p.isPunct(",") {
			return elems, p.expect(close)
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
}

// list parses [...] or [...|Tail]. A tail that is itself a list is joined
// to the elements, as [a|[b]] is the list [a,b] in Erlang.
func (p *parser) list(depth int) (Term, error) {
	if err := p.advance(); err != nil {
		return nil, err
	}
	elems := List{}
	if p.isPunct("]") {
		return elems, p.advance()
	}
	for {
		t, err := p.term(depth + 1)
		if err != nil {
			return nil, err
		}
		elems = append(elems, t)
		switch {
		case p.isPunct(","):
			if err := p.advance(); err != nil {
				return nil, err
			}
		case p.isPunct("|"):
			if err := p.advance(); err != nil {
				return nil, err
			}
			tail, err := p.term(depth + 1)
			if err != nil {
				return nil, err
			}
			if err := p.expect("]"); err != nil {
				return nil, err
			}
			return joinList(elems, tail), nil
		default:
			return elems, p.expect("]")
		}
	}
}

// joinList returns the list with elements elems and tail tail. It does not
// modify elems.
func joinList(elems []Term, tail Term) Term {
	elems = slices.Clip(elems)
	switch t := tail.(type) {
	case List:
		return append(List(elems), t...)
	case String:
		return append(List(elems), stringElems(t)...)
	case ImproperList:
		return joinList(append(elems, t.Elems...), t.Tail)
	}
	if len(elems) == 0 {
		return tail
	}
	return ImproperList{Elems: elems, Tail: tail}
}

// mapBody parses the {K => V, ...} of a map; the current token is '{'.
func (p *parser) mapBody(depth int) (Term, error) {
	if err := p.advance(); err != nil {
		return nil, err
	}
	m := Map{}
	if p.isPunct("}") {
		return m, p.advance()
	}
	for {
		k, err := p.term(depth + 1)
		if err != nil {
			return nil, err
		}
		if err := p.expect("=>"); err != nil {
			return nil, err
		}
		v, err := p.term(depth + 1)
		if err != nil {
			return nil, err
		}
		m = m.put(k, v)
		if !p.isPunct(",") {
			return m, p.expect("}")
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
}

// put sets the value of key in m, replacing an equal key's value.
func (m Map) put(key, value Term) Map {
	for i := range m {
		if Equal(m[i].Key, key) {
			m[i].Value = value
			return m
		}
	}
	return append(m, MapPair{Key: key, Value: value})
}

// binary parses <<...>> with segments that are strings or integers, each
// optionally followed by /utf8. Like Erlang, it keeps the low 8 bits of
// integers and of the characters of strings without /utf8.
func (p *parser) binary() (Term, error) {
	if err := p.advance(); err != nil {
		return nil, err
	}
	b := Binary{}
	if p.isPunct(">>") {
		return b, p.advance()
	}
	for {
		var chars []rune
		switch {
		case p.tok.kind == tokString:
			s, err := p.stringLits()
			if err != nil {
				return nil, err
			}
			chars = []rune(s)
		case p.tok.kind == tokInt || p.isPunct("-"):
			neg := p.isPunct("-")
			if neg {
				if err := p.advance(); err != nil {
					return nil, err
				}
				if p.tok.kind != tokInt {
					return nil, p.unexpected()
				}
			}
			line := p.tok.line
			n, err := p.number(neg)
			if err != nil {
				return nil, err
			}
			c := n.(int64)
			if p.isPunct("/") && !isCodePoint(c) {
				return nil, p.s.errorf(line, "%d is not a Unicode code point", c)
			}
			chars = []rune{rune(c)}
		default:
			return nil, p.unexpected()
		}
		if p.isPunct("/") {
			if err := p.advance(); err != nil {
				return nil, err
			}
			if p.tok.kind != tokAtom || p.tok.text != "utf8" {
				return nil, p.s.errorf(p.tok.line, "unsupported binary segment type %s", p.tok.describe())
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
			for _, r := range chars {
				b = utf8.AppendRune(b, r)
			}
		} else {
			for _, r := range chars {
				b = append(b, byte(r))
			}
		}
		if !p.isPunct(",") {
			return b, p.expect(">>")
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
}
