package epmd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"time"
)

// Bounds on a NAMES reply from another host's port mapper, which may not be
// one: the reply is read up to maxNamesReply bytes, and at most maxNames
// names are kept.
const (
	maxNamesReply = 64 << 10
	maxNames      = 1024
)

// Names asks the port mapper at addr (host:port) which nodes it knows, and
// returns their names by port. It reads at most 64 KiB within timeout and
// returns at most 1024 names, each a valid node name (see ValidName).
func Names(addr string, timeout time.Duration) (map[int]string, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{0, 1, namesReq}); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(c, maxNamesReply))
	if err != nil {
		return nil, err
	}
	if len(b) < 4 {
		return nil, errors.New("epmd: short NAMES reply")
	}
	lines := strings.Split(string(b[4:]), "\n")
	// The last piece follows the last newline: empty, or a line that the
	// size limit may have cut.
	lines = lines[:len(lines)-1]
	out := map[int]string{}
	for _, line := range lines {
		if len(out) >= maxNames {
			break
		}
		var name string
		var port int
		// The reply comes from another host: keep only names that are
		// plain node names, since they end up in Erlang expressions.
		if _, err := fmt.Sscanf(line, "name %s at port %d", &name, &port); err == nil &&
			ValidName(name) && port > 0 && port < 65536 {
			out[port] = name
		}
	}
	return out, nil
}

// PortPlease asks the port mapper at addr (host:port) for the
// distribution port of the node called name (PORT_PLEASE2), the way a
// node looks a peer up. It returns 0 and no error when the port mapper
// knows no such node.
func PortPlease(addr, name string, timeout time.Duration) (int, error) {
	if !ValidName(name) {
		return 0, fmt.Errorf("epmd: invalid node name %q", name)
	}
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	req := binary.BigEndian.AppendUint16(nil, uint16(1+len(name)))
	req = append(append(req, portPlease2Req), name...)
	if _, err := c.Write(req); err != nil {
		return 0, err
	}
	var head [4]byte
	if _, err := io.ReadFull(c, head[:2]); err != nil {
		return 0, fmt.Errorf("epmd: PORT_PLEASE2 reply: %w", err)
	}
	if head[0] != port2Resp {
		return 0, fmt.Errorf("epmd: not a PORT_PLEASE2 reply")
	}
	if head[1] != 0 {
		return 0, nil
	}
	if _, err := io.ReadFull(c, head[2:4]); err != nil {
		return 0, fmt.Errorf("epmd: PORT_PLEASE2 reply: %w", err)
	}
	return int(binary.BigEndian.Uint16(head[2:4])), nil
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,255}$`)

// ValidName reports whether name is a plain node name (the part before
// @): letters, digits, '_', '.', '-'.
func ValidName(name string) bool { return namePattern.MatchString(name) }
