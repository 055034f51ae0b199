package epmd

import "time"

// warnBudget is how many distinct warnings a minute the server logs.
const warnBudget = 32

// warnLimiter keeps what a local process sends from flooding the plugin
// log: each key is logged once a minute, and at most warnBudget keys a
// minute, so its memory stays bounded too.
type warnLimiter struct {
	since time.Time
	seen  map[string]bool
}

// mayWarn reports whether to log the warning named key now, and whether
// it is the last one this minute.
func (s *Server) mayWarn(key string) (ok, last bool) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	w := &s.warns
	if w.seen == nil || now.Sub(w.since) >= time.Minute {
		w.since, w.seen = now, map[string]bool{}
	}
	if w.seen[key] || len(w.seen) >= warnBudget {
		return false, false
	}
	w.seen[key] = true
	return true, len(w.seen) == warnBudget
}

// clip makes a name from the wire safe to log: at most 64 bytes, printable
// ASCII only.
func clip(name string) string {
	const limit = 64
	b := []byte(name)
	clipped := len(b) > limit
	if clipped {
		b = b[:limit]
	}
	for i, c := range b {
		if c <= ' ' || c > '~' {
			b[i] = '?'
		}
	}
	if clipped {
		return string(b) + "..."
	}
	return string(b)
}
