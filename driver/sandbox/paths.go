package sandbox

// SystemReadOnly are the host paths a confined task may read and execute:
// programs and libraries (Debian's Erlang is under /usr/lib/erlang), the
// few files of /etc that name resolution, users, time zones and TLS need,
// and what the VM reads of /proc and /sys to size itself. The rest of /etc
// is not among them: agents' configuration and credentials live there.
var SystemReadOnly = []string{
	"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
	"/etc/passwd", "/etc/group", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf",
	"/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf", "/etc/services",
	"/etc/protocols", "/etc/localtime", "/etc/timezone", "/etc/ld.so.cache",
	"/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/ssl", "/etc/ca-certificates",
	"/etc/pki", "/etc/crypto-policies", "/etc/alternatives", "/etc/os-release",
	"/etc/mime.types", "/etc/inputrc", "/etc/terminfo",
	"/run/systemd/resolve", "/run/resolvconf",
	"/proc", "/sys/devices/system/cpu", "/sys/devices/system/node", "/sys/fs/cgroup",
}

// Devices are the device files a confined task may read and write.
var Devices = []string{
	"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
	"/dev/tty", "/dev/ptmx", "/dev/pts",
}
