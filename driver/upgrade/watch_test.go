package upgrade

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeSource answers each Read with the next of its answers, then blocks
// until the read's context ends, as a blocking query with nothing new.
type fakeSource struct {
	mu      sync.Mutex
	answers []answer
	indexes []uint64
}

type answer struct {
	items map[string]string
	last  uint64
	err   error
}

func (s *fakeSource) Read(ctx context.Context, index uint64) (map[string]string, uint64, error) {
	s.mu.Lock()
	s.indexes = append(s.indexes, index)
	if len(s.answers) > 0 {
		a := s.answers[0]
		s.answers = s.answers[1:]
		s.mu.Unlock()
		return a.items, a.last, a.err
	}
	s.mu.Unlock()
	<-ctx.Done()
	return nil, 0, ctx.Err()
}

func (s *fakeSource) seen() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.indexes...)
}

func TestWatch(t *testing.T) {
	const alloc = "0b0e7a4c-1111-2222-3333-444455556666"
	src := &fakeSource{answers: []answer{
		{items: map[string]string{"all": `{"version":"1"}`}, last: 5},
		{err: errors.New("connection refused")},
		{items: map[string]string{alloc: `{"version":"2"}`, "all": `{"version":"1"}`}, last: 7},
		{items: map[string]string{alloc: `{"version":"2"}`}, last: 3}, // the index went back
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var got []string
	var warned int
	kick := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Watch(ctx, src, alloc, kick, func(key, raw string) bool {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, key+" "+raw)
			return len(got) == 1 // the first time, the node is not up yet
		}, func(error) { mu.Lock(); warned++; mu.Unlock() })
	}()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 3 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A kick ends the blocking read at once and reads from index 0.
	kick <- struct{}{}
	time.Sleep(100 * time.Millisecond)
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	want := []string{`all {"version":"1"}`, alloc + ` {"version":"2"}`, alloc + ` {"version":"2"}`}
	if len(got) != len(want) {
		t.Fatalf("converged on %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("converge %d: %q, want %q", i, got[i], want[i])
		}
	}
	if warned != 1 {
		t.Errorf("warned %d times, want once for the failed read", warned)
	}
	idx := src.seen()
	// 0; 0 again after the retry request; 0 after the failed read; 7; then
	// 0, as the index went back (3 < 7); a kick ends that last read, and
	// the next starts at 0 too.
	if len(idx) < 5 || idx[0] != 0 || idx[1] != 0 || idx[3] != 7 || idx[4] != 0 {
		t.Errorf("read indexes %v", idx)
	}
}
