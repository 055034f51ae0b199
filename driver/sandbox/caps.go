package sandbox

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// rootCaps are the capabilities a task that runs as root keeps: those of
// Nomad's exec driver by default, less mknod, setfcap, sys_chroot, and
// dac_override and fowner, which would let it open what other users own
// (their terminals in /dev/pts, say).
// Everything else (sys_admin, sys_module, net_admin, sys_ptrace, bpf,
// sys_rawio, ...) is gone from its bounding set, so no program it execs
// gets it back.
var rootCaps = []uintptr{
	unix.CAP_AUDIT_WRITE, unix.CAP_CHOWN,
	unix.CAP_FSETID, unix.CAP_KILL, unix.CAP_NET_BIND_SERVICE, unix.CAP_SETGID,
	unix.CAP_SETPCAP, unix.CAP_SETUID,
}

// dropCaps limits the calling thread, and what it execs, to rootCaps.
func dropCaps() error {
	last := 40
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			last = n
		}
	}
	keep := map[uintptr]bool{}
	var mask [2]uint32
	for _, c := range rootCaps {
		keep[c] = true
		mask[c/32] |= 1 << (c % 32)
	}
	for c := uintptr(0); c <= uintptr(last); c++ {
		if keep[c] {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, c, 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("drop capability %d: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: mask[0], Permitted: mask[0], Inheritable: mask[0]},
		{Effective: mask[1], Permitted: mask[1], Inheritable: mask[1]},
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}
