package appup

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The Erlang external term format, as much of it as module attributes
// use. Terms decode to atom, tuple, []any (lists; strings as lists of
// int64), []byte (binaries), int64, and opaque for what is only skipped.
type (
	atom   string
	tuple  []any
	opaque struct{}
)

const maxETFDepth = 100

// decodeETF decodes term_to_binary output, version byte included.
func decodeETF(b []byte) (any, error) {
	if len(b) < 1 || b[0] != 131 {
		return nil, errors.New("not in external term format")
	}
	d := &etfDecoder{b: b[1:]}
	t, err := d.term(0)
	if err != nil {
		return nil, err
	}
	return t, nil
}

type etfDecoder struct {
	b     []byte
	atoms map[string]bool // when set, every atom decoded
}

var errETFShort = errors.New("external term is truncated")

func (d *etfDecoder) take(n int) ([]byte, error) {
	if n < 0 || n > len(d.b) {
		return nil, errETFShort
	}
	s := d.b[:n]
	d.b = d.b[n:]
	return s, nil
}

func (d *etfDecoder) u8() (int, error) {
	s, err := d.take(1)
	if err != nil {
		return 0, err
	}
	return int(s[0]), nil
}

func (d *etfDecoder) u16() (int, error) {
	s, err := d.take(2)
	if err != nil {
		return 0, err
	}
	return int(binary.BigEndian.Uint16(s)), nil
}

func (d *etfDecoder) u32() (int, error) {
	s, err := d.take(4)
	if err != nil {
		return 0, err
	}
	n := binary.BigEndian.Uint32(s)
	if int64(n) > int64(len(d.b))+1 {
		// Every element takes at least one byte; NIL tails may be the +1.
		return 0, errETFShort
	}
	return int(n), nil
}

func (d *etfDecoder) term(depth int) (any, error) {
	if depth > maxETFDepth {
		return nil, errors.New("external term nests too deeply")
	}
	tag, err := d.u8()
	if err != nil {
		return nil, err
	}
	switch tag {
	case 97: // SMALL_INTEGER_EXT
		n, err := d.u8()
		return int64(n), err
	case 98: // INTEGER_EXT
		s, err := d.take(4)
		if err != nil {
			return nil, err
		}
		return int64(int32(binary.BigEndian.Uint32(s))), nil
	case 70: // NEW_FLOAT_EXT
		_, err := d.take(8)
		return opaque{}, err
	case 110, 111: // SMALL_BIG_EXT, LARGE_BIG_EXT
		var n int
		if tag == 110 {
			n, err = d.u8()
		} else {
			n, err = d.u32()
		}
		if err != nil {
			return nil, err
		}
		_, err = d.take(n + 1)
		return opaque{}, err
	case 100, 118: // ATOM_EXT, ATOM_UTF8_EXT
		n, err := d.u16()
		if err != nil {
			return nil, err
		}
		s, err := d.take(n)
		d.saw(s)
		return atom(s), err
	case 115, 119: // SMALL_ATOM_EXT, SMALL_ATOM_UTF8_EXT
		n, err := d.u8()
		if err != nil {
			return nil, err
		}
		s, err := d.take(n)
		d.saw(s)
		return atom(s), err
	case 104, 105: // SMALL_TUPLE_EXT, LARGE_TUPLE_EXT
		var n int
		if tag == 104 {
			n, err = d.u8()
		} else {
			n, err = d.u32()
		}
		if err != nil {
			return nil, err
		}
		t := make(tuple, 0, min(n, 64))
		for range n {
			e, err := d.term(depth + 1)
			if err != nil {
				return nil, err
			}
			t = append(t, e)
		}
		return t, nil
	case 106: // NIL_EXT
		return []any{}, nil
	case 107: // STRING_EXT
		n, err := d.u16()
		if err != nil {
			return nil, err
		}
		s, err := d.take(n)
		if err != nil {
			return nil, err
		}
		l := make([]any, len(s))
		for i, c := range s {
			l[i] = int64(c)
		}
		return l, nil
	case 108: // LIST_EXT
		n, err := d.u32()
		if err != nil {
			return nil, err
		}
		l := make([]any, 0, min(n, 64))
		for range n {
			e, err := d.term(depth + 1)
			if err != nil {
				return nil, err
			}
			l = append(l, e)
		}
		tail, err := d.term(depth + 1)
		if err != nil {
			return nil, err
		}
		if t, ok := tail.([]any); !ok || len(t) != 0 {
			return opaque{}, nil // an improper list
		}
		return l, nil
	case 109: // BINARY_EXT
		n, err := d.u32()
		if err != nil {
			return nil, err
		}
		return d.take(n)
	case 77: // BIT_BINARY_EXT
		n, err := d.u32()
		if err != nil {
			return nil, err
		}
		_, err = d.take(n + 1)
		return opaque{}, err
	case 116: // MAP_EXT
		n, err := d.u32()
		if err != nil {
			return nil, err
		}
		for range 2 * n {
			if _, err := d.term(depth + 1); err != nil {
				return nil, err
			}
		}
		return opaque{}, nil
	case 113: // EXPORT_EXT: module, function, arity
		for range 3 {
			if _, err := d.term(depth + 1); err != nil {
				return nil, err
			}
		}
		return opaque{}, nil
	default:
		return nil, fmt.Errorf("external term tag %d is not supported in attributes", tag)
	}
}

func (d *etfDecoder) saw(s []byte) {
	if d.atoms != nil {
		d.atoms[string(s)] = true
	}
}
