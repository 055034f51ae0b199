package appup

import (
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
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
	// A size below the BEAM tag, and an atom count of -2^31.
	for _, b := range [][]byte{
		[]byte("FOR1\x00\x00\x00\x00BEAM"),
		[]byte("FOR1\x00\x00\x00\x10BEAMAtU8\x00\x00\x00\x04\x80\x00\x00\x00"),
	} {
		if _, err := ReadBeam(b); err == nil {
			t.Errorf("% x read without error", b)
		}
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
	// A list that claims 1M elements inside one that claims as many, 100
	// deep, in 2 MiB: nothing is allocated for elements that are not
	// there.
	bomb := []byte{131}
	for range 100 {
		bomb = append(bomb, 108, 0x00, 0x10, 0x00, 0x00)
	}
	bomb = append(bomb, make([]byte, 2<<20)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := decodeETF(bomb); err == nil {
		t.Error("a list bomb decoded without error")
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 10<<20 {
		t.Errorf("decoding a 2 MiB list bomb allocated %d MiB", grew>>20)
	}
	deep := []byte{131}
	for range 10000 {
		deep = append(deep, 104, 1)
	}
	if _, err := decodeETF(append(deep, 106)); err == nil {
		t.Error("10000 nested tuples decoded without error")
	}
}
