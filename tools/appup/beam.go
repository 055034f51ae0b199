package appup

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
)

// Module is what a compiled module (a .beam file) tells about itself without
// being loaded: enough to decide how a hot upgrade must load it.
type Module struct {
	// Name is the module's name, the first atom of its atom table.
	Name string
	// MD5 is the digest erlang:module_info(md5) reports: over the chunks
	// that hold code, atoms, imports, exports, funs and literals, so that
	// recompiling with other debug info or compile options changes nothing.
	MD5 [16]byte
	// Exports are the exported functions, as "name/arity".
	Exports map[string]bool
	// Calls are the modules the code calls (its import table), sorted.
	Calls []string
	// Behaviours are the module's -behaviour attributes.
	Behaviours []string
	// LoadsNIF says that the module calls erlang:load_nif/2.
	LoadsNIF bool
	// Atoms are the atoms the module's code and literals use, its own name
	// included: a supervisor's child specs, which are literals, name the
	// child modules.
	Atoms []string
}

// md5Chunks are the chunks beam_lib:md5/1 digests, in this order.
var md5Chunks = []string{"Atom", "AtU8", "Code", "StrT", "ImpT", "ExpT", "FunT", "LitT", "Meta"}

// maxBeam bounds a (decompressed) .beam file.
const maxBeam = 64 << 20

// ReadBeam reads a .beam file's chunks. It accepts gzip-compressed files,
// as the compiler writes with the compressed option.
func ReadBeam(data []byte) (*Module, error) {
	if len(data) > 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("compressed beam: %w", err)
		}
		data, err = io.ReadAll(io.LimitReader(zr, maxBeam+1))
		if err != nil {
			return nil, fmt.Errorf("compressed beam: %w", err)
		}
		if len(data) > maxBeam {
			return nil, errors.New("beam file larger than 64 MiB")
		}
	}
	chunks, err := readChunks(data)
	if err != nil {
		return nil, err
	}
	m := &Module{Exports: map[string]bool{}}
	if m.Atoms, err = readAtoms(chunks); err != nil {
		return nil, err
	}
	if len(m.Atoms) == 0 {
		return nil, errors.New("beam file has an empty atom table")
	}
	m.Name = m.Atoms[0]
	m.Atoms = append(m.Atoms, literalAtoms(chunks["LitT"])...)
	atom := func(i uint32) (string, error) {
		if i == 0 || int(i) > len(m.Atoms) {
			return "", fmt.Errorf("atom index %d out of range", i)
		}
		return m.Atoms[i-1], nil
	}
	exp, err := triples(chunks["ExpT"])
	if err != nil {
		return nil, fmt.Errorf("export table: %w", err)
	}
	for _, e := range exp {
		f, err := atom(e[0])
		if err != nil {
			return nil, fmt.Errorf("export table: %w", err)
		}
		m.Exports[fmt.Sprintf("%s/%d", f, e[1])] = true
	}
	imp, err := triples(chunks["ImpT"])
	if err != nil {
		return nil, fmt.Errorf("import table: %w", err)
	}
	calls := map[string]bool{}
	for _, e := range imp {
		mod, err := atom(e[0])
		if err != nil {
			return nil, fmt.Errorf("import table: %w", err)
		}
		if mod != m.Name && mod != "erlang" {
			calls[mod] = true
		}
		if f, _ := atom(e[1]); mod == "erlang" && f == "load_nif" && e[2] == 2 {
			m.LoadsNIF = true
		}
	}
	for c := range calls {
		m.Calls = append(m.Calls, c)
	}
	sort.Strings(m.Calls)
	if attr, ok := chunks["Attr"]; ok {
		m.Behaviours, err = behaviours(attr)
		if err != nil {
			return nil, fmt.Errorf("attributes: %w", err)
		}
	}
	h := md5.New()
	for _, id := range md5Chunks {
		if id == "FunT" {
			h.Write(funTable(chunks[id]))
			continue
		}
		h.Write(chunks[id])
	}
	copy(m.MD5[:], h.Sum(nil))
	return m, nil
}

// readChunks splits the IFF container: "FOR1", size, "BEAM", then chunks
// of id, size and data padded to four bytes.
func readChunks(data []byte) (map[string][]byte, error) {
	if len(data) < 12 || string(data[0:4]) != "FOR1" || string(data[8:12]) != "BEAM" {
		return nil, errors.New("not a beam file (no FOR1/BEAM header)")
	}
	size := binary.BigEndian.Uint32(data[4:8])
	if int64(size) > int64(len(data)-8) {
		return nil, errors.New("beam file is truncated")
	}
	if size < 4 {
		return nil, errors.New("beam file is too short")
	}
	data = data[12 : 8+size]
	chunks := map[string][]byte{}
	for len(data) > 0 {
		if len(data) < 8 {
			return nil, errors.New("beam file has a truncated chunk header")
		}
		id := string(data[0:4])
		n := binary.BigEndian.Uint32(data[4:8])
		if int64(n) > int64(len(data)-8) {
			return nil, fmt.Errorf("beam chunk %q is truncated", id)
		}
		chunks[id] = data[8 : 8+n]
		next := 8 + (int(n)+3)&^3
		if next > len(data) {
			next = len(data)
		}
		data = data[next:]
	}
	return chunks, nil
}

// readAtoms decodes the atom table: AtU8 (UTF-8) or the older Atom
// (Latin-1). From OTP 28 a negative count says that the lengths use the
// compact term encoding.
func readAtoms(chunks map[string][]byte) ([]string, error) {
	data, latin1 := chunks["AtU8"], false
	if data == nil {
		data, latin1 = chunks["Atom"], true
	}
	if len(data) < 4 {
		return nil, errors.New("beam file has no atom table")
	}
	raw := int64(int32(binary.BigEndian.Uint32(data[0:4])))
	compact := raw < 0
	if compact {
		raw = -raw
	}
	if raw > int64(len(data)) {
		return nil, errors.New("atom table count is too large")
	}
	count := int(raw)
	data = data[4:]
	atoms := make([]string, 0, min(count, 4096))
	for range count {
		var n int
		if compact {
			var used int
			var err error
			n, used, err = compactUint(data)
			if err != nil {
				return nil, fmt.Errorf("atom table: %w", err)
			}
			data = data[used:]
		} else {
			if len(data) < 1 {
				return nil, errors.New("atom table is truncated")
			}
			n, data = int(data[0]), data[1:]
		}
		if n > len(data) {
			return nil, errors.New("atom table is truncated")
		}
		s := data[:n]
		if latin1 {
			r := make([]rune, n)
			for i, c := range s {
				r[i] = rune(c)
			}
			atoms = append(atoms, string(r))
		} else {
			atoms = append(atoms, string(s))
		}
		data = data[n:]
	}
	return atoms, nil
}

// funTable returns the FunT chunk as beam_lib:md5/1 digests it: with the
// OldUniq word of each entry zeroed.
func funTable(data []byte) []byte {
	if len(data) < 4 {
		return data
	}
	out := append([]byte(nil), data...)
	for o := 4; o+24 <= len(out); o += 24 {
		copy(out[o+20:o+24], []byte{0, 0, 0, 0})
	}
	return out
}

// compactUint decodes an unsigned integer in the compact term encoding
// (tag u), as OTP 28 writes atom lengths.
func compactUint(b []byte) (v, used int, err error) {
	if len(b) < 1 {
		return 0, 0, errors.New("truncated length")
	}
	switch {
	case b[0]&0x08 == 0:
		return int(b[0] >> 4), 1, nil
	case b[0]&0x10 == 0:
		if len(b) < 2 {
			return 0, 0, errors.New("truncated length")
		}
		return int(b[0]>>5)<<8 | int(b[1]), 2, nil
	default:
		n := int(b[0]>>5) + 2
		if n > 4 || len(b) < 1+n {
			return 0, 0, errors.New("atom length too large")
		}
		for _, c := range b[1 : 1+n] {
			v = v<<8 | int(c)
		}
		return v, 1 + n, nil
	}
}

// triples decodes an export or import table: a count, then entries of
// three big-endian 32-bit words.
func triples(data []byte) ([][3]uint32, error) {
	if data == nil {
		return nil, nil
	}
	if len(data) < 4 {
		return nil, errors.New("truncated")
	}
	n := binary.BigEndian.Uint32(data[0:4])
	if int64(n)*12 > int64(len(data)-4) {
		return nil, errors.New("truncated")
	}
	out := make([][3]uint32, n)
	for i := range out {
		o := 4 + i*12
		out[i] = [3]uint32{
			binary.BigEndian.Uint32(data[o:]),
			binary.BigEndian.Uint32(data[o+4:]),
			binary.BigEndian.Uint32(data[o+8:]),
		}
	}
	return out, nil
}

// behaviours returns the -behaviour (and -behavior) attributes from the
// Attr chunk, an external-term-format list of {Name, Values} pairs.
func behaviours(attr []byte) ([]string, error) {
	t, err := decodeETF(attr)
	if err != nil {
		return nil, err
	}
	list, ok := t.([]any)
	if !ok {
		return nil, errors.New("not a list")
	}
	var out []string
	for _, e := range list {
		pair, ok := e.(tuple)
		if !ok || len(pair) != 2 {
			continue
		}
		if name, _ := pair[0].(atom); name != "behaviour" && name != "behavior" {
			continue
		}
		vals, _ := pair[1].([]any)
		for _, v := range vals {
			if a, ok := v.(atom); ok {
				out = append(out, string(a))
			}
		}
	}
	return out, nil
}

// maxLiterals bounds the decompressed literal table.
const maxLiterals = 64 << 20

// literalAtoms returns the atoms in the literal table: a 32-bit
// uncompressed size (0 when the table is stored uncompressed), then,
// zlib-compressed, a count and that many sized external terms. It is best
// effort: what it cannot decode it skips.
func literalAtoms(data []byte) []string {
	if len(data) < 4 {
		return nil
	}
	body := data[4:]
	if binary.BigEndian.Uint32(data[0:4]) != 0 {
		zr, err := zlib.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil
		}
		defer zr.Close()
		if body, err = io.ReadAll(io.LimitReader(zr, maxLiterals)); err != nil {
			return nil
		}
	}
	if len(body) < 4 {
		return nil
	}
	n := binary.BigEndian.Uint32(body[0:4])
	body = body[4:]
	seen := map[string]bool{}
	for i := uint32(0); i < n && len(body) >= 4; i++ {
		size := binary.BigEndian.Uint32(body[0:4])
		if int64(size) > int64(len(body)-4) {
			break
		}
		d := &etfDecoder{b: body[4 : 4+size], atoms: seen}
		if len(d.b) > 0 && d.b[0] == 131 {
			d.b = d.b[1:]
			_, _ = d.term(0)
		}
		body = body[4+size:]
	}
	return sortedKeys(seen)
}
