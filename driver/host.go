package driver

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// hostInfo describes the Erlang installed on the client, if any.
type hostInfo struct {
	Path string // absolute path of erl
	OTP  string // OTP release, e.g. "25"
	ERTS string // erts version, e.g. "13.1.5"
}

// hostErlang finds the host's erl and asks it its versions. Releases that
// bundle their erts never need it; shipments and include_erts: false
// releases do.
type hostErlang struct {
	mu     sync.Mutex
	path   string // configured erl_path; empty means PATH
	cached hostInfo
	key    string // path and mtime the cache is for
}

func (h *hostErlang) setPath(p string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.path = p
	h.key = ""
}

// probe returns the host's Erlang, or a zero hostInfo when there is none.
func (h *hostErlang) probe(ctx context.Context) hostInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.path
	if p == "" {
		var err error
		if p, err = exec.LookPath("erl"); err != nil {
			h.cached, h.key = hostInfo{}, ""
			return hostInfo{}
		}
	}
	fi, err := os.Stat(p)
	if err != nil {
		h.cached, h.key = hostInfo{}, ""
		return hostInfo{}
	}
	key := p + "@" + fi.ModTime().String()
	if key == h.key {
		return h.cached
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, p, "-noshell", "-noinput", "-eval",
		`io:format("~s ~s", [erlang:system_info(otp_release), erlang:system_info(version)]), halt().`).Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) != 2 {
		return hostInfo{}
	}
	abs, _ := filepath.Abs(p)
	h.cached, h.key = hostInfo{Path: abs, OTP: f[0], ERTS: f[1]}, key
	return h.cached
}
