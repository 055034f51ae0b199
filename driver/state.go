package driver

import (
	"sync"
)

// taskStore holds the handles of the tasks this plugin instance runs.
type taskStore struct {
	mu    sync.RWMutex
	store map[string]*taskHandle
}

func newTaskStore() *taskStore {
	return &taskStore{store: map[string]*taskHandle{}}
}

func (ts *taskStore) Set(id string, h *taskHandle) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.store[id] = h
}

func (ts *taskStore) Get(id string) (*taskHandle, bool) {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	h, ok := ts.store[id]
	return h, ok
}

func (ts *taskStore) Delete(id string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	delete(ts.store, id)
}

// All returns the handles of every task.
func (ts *taskStore) All() []*taskHandle {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	out := make([]*taskHandle, 0, len(ts.store))
	for _, h := range ts.store {
		out = append(out, h)
	}
	return out
}
