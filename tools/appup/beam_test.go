package appup

import (
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// TestReadBeamHostile feeds ReadBeam every truncation and many random
// corruptions of a real module: each must be an error or a module, never
// a panic or a hang.
func TestReadBeamHostile(t *testing.T) {
	dir := t.TempDir()
	p := shopV2().build(t, dir)
	b, err := os.ReadFile(filepath.Join(p.Root, "lib", "shop-2.0.0", "ebin", "sup.beam"))
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(b) {
		_, _ = ReadBeam(b[:n])
	}
	rng := rand.New(rand.NewSource(1))
	for range 5000 {
		c := append([]byte(nil), b...)
		for range 1 + rng.Intn(8) {
			c[rng.Intn(len(c))] = byte(rng.Intn(256))
		}
		_, _ = ReadBeam(c)
	}
	if _, err := ReadBeam([]byte("FOR1\xff\xff\xff\xffBEAM")); err == nil {
		t.Error("a beam claiming 4 GiB read without error")
	}
}

func FuzzReadBeam(f *testing.F) {
	f.Add([]byte("FOR1\x00\x00\x00\x04BEAM"))
	f.Add([]byte("FOR1\x00\x00\x00\x10BEAMAtU8\x00\x00\x00\x04\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ReadBeam(b) })
}

func TestDecodeETFHostile(t *testing.T) {
	for _, b := range [][]byte{
		{131, 108, 0xff, 0xff, 0xff, 0xff},       // a list claiming 4G elements
		{131, 116, 0x7f, 0xff, 0xff, 0xff},       // a map claiming 2G pairs
		{131, 105, 0xff, 0xff, 0xff, 0xff},       // a tuple claiming 4G elements
		{131, 109, 0xff, 0xff, 0xff, 0xf0, 1, 2}, // a binary longer than the input
	} {
		if _, err := decodeETF(b); err == nil {
			t.Errorf("% x decoded without error", b)
		}
	}
	deep := []byte{131}
	for range 10000 {
		deep = append(deep, 104, 1)
	}
	if _, err := decodeETF(append(deep, 106)); err == nil {
		t.Error("10000 nested tuples decoded without error")
	}
}
