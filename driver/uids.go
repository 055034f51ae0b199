package driver

import "sync"

// uidClaims records which task holds each jobspec-named dynamic workload
// user (nomad-N), from the check in StartTask until its start fails or
// the task is destroyed, so that two tasks that start at once cannot both
// take one uid: the check and the claim are one step.
type uidClaims struct {
	mu    sync.Mutex
	owner map[string]string // user name → task ID
}

// claim gives name to taskID unless another task holds it and live says
// that task still runs or is starting. A task may claim its own name
// again.
func (c *uidClaims) claim(name, taskID string, live func(taskID string) bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o, ok := c.owner[name]; ok && o != taskID && live(o) {
		return false
	}
	if c.owner == nil {
		c.owner = map[string]string{}
	}
	c.owner[name] = taskID
	return true
}

// release drops every claim of taskID.
func (c *uidClaims) release(taskID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for n, o := range c.owner {
		if o == taskID {
			delete(c.owner, n)
		}
	}
}
