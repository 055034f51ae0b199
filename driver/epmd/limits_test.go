package epmd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// A length prefix beyond maxRequest is refused before anything is read or
// allocated for it.
func TestReadRequestTooLong(t *testing.T) {
	data := append([]byte{0xFF, 0xFF}, make([]byte, 10)...)
	r := bytes.NewReader(data)
	var buf [maxRequest]byte
	if _, err := readRequest(r, &buf); !errors.Is(err, errTooLong) {
		t.Fatalf("err = %v, want errTooLong", err)
	}
	if r.Len() != 10 {
		t.Fatalf("read %d bytes past the length", 10-r.Len())
	}
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(data)
		_, _ = readRequest(r, &buf)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations for an oversized request", allocs)
	}
}

func TestOversizedRequestClosed(t *testing.T) {
	_, addr := start(t, nil, defaultLimits)
	for _, n := range []int{0xFFFF, maxRequest + 1} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(binary.BigEndian.AppendUint16(nil, uint16(n))); err != nil {
			t.Fatal(err)
		}
		// Well before the read deadline: the server does not wait for
		// the request's body.
		if !closedWithin(c, time.Second) {
			t.Fatalf("length %d: connection not closed", n)
		}
	}
}

func TestIdleConnectionClosed(t *testing.T) {
	lim := limits{maxConns: 8, readTimeout: 200 * time.Millisecond, writeTimeout: time.Second}
	_, addr := start(t, nil, lim)
	for _, send := range [][]byte{nil, {0, 10, portPlease2Req}} { // nothing, or part of a request
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(send); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if !closedWithin(c, 3*time.Second) {
			t.Fatalf("sent %v: connection not closed", send)
		}
		if d := time.Since(t0); d < 150*time.Millisecond {
			t.Fatalf("sent %v: closed after %v, before the deadline", send, d)
		}
	}
}

func TestConnectionCap(t *testing.T) {
	lim := limits{maxConns: 4, readTimeout: 3 * time.Second, writeTimeout: time.Second}
	s, addr := start(t, nil, lim)
	_ = s.Set("shop-1", 24002, "task-a")
	// A registration does not hold a slot.
	if _, res := register(t, addr, "shop-1", 24002); res != 0 {
		t.Fatal("node refused")
	}
	idle := make([]net.Conn, lim.maxConns)
	for i := range idle {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle[i] = c
	}
	t0 := time.Now()
	extra := request(t, addr, append([]byte{portPlease2Req}, "shop-1"...))
	if !closedWithin(extra, time.Second) {
		t.Fatal("connection beyond the cap not closed")
	}
	if b, _ := io.ReadAll(extra); len(b) != 0 {
		t.Fatalf("connection beyond the cap answered: %v", b)
	}
	if d := time.Since(t0); d > lim.readTimeout/2 {
		t.Fatalf("extra connection closed only after %v", d)
	}
	if closedWithin(idle[len(idle)-1], 100*time.Millisecond) {
		t.Fatal("last idle connection within the cap closed early")
	}
	for _, c := range idle {
		if !closedWithin(c, 2*lim.readTimeout) {
			t.Fatal("idle connection not closed")
		}
	}
	if p := portPlease(t, addr, "shop-1"); p != 24002 {
		t.Fatalf("port %d after idle connections timed out, want 24002", p)
	}
}

// fakeMapper answers one connection with serve.
func fakeMapper(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.ReadFull(c, make([]byte, 3))
		serve(c)
	}()
	return ln.Addr().String()
}

func TestNamesEndlessReply(t *testing.T) {
	addr := fakeMapper(t, func(c net.Conn) {
		_, _ = c.Write([]byte{0, 0, 0x11, 0x11})
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(c, "name n%d at port %d\n", i, 1+i%65535); err != nil {
				return
			}
		}
	})
	t0 := time.Now()
	got, err := Names(addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Fatalf("Names took %v", d)
	}
	if len(got) != maxNames {
		t.Fatalf("%d names, want the cap %d", len(got), maxNames)
	}
}

func TestNamesFilters(t *testing.T) {
	addr := fakeMapper(t, func(c net.Conn) {
		_, _ = c.Write([]byte{0, 0, 0x11, 0x11})
		_, _ = io.WriteString(c, "name good at port 1234\nname bad'atom at port 5\nname big at port 70000\nname cut at port 12")
	})
	got, err := Names(addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[1234] != "good" {
		t.Fatalf("Names = %v, want only good at 1234", got)
	}
}
