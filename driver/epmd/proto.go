package epmd

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
)

// Request and response codes of the epmd protocol.
const (
	alive2Req      = 120
	alive2Resp     = 121
	alive2XResp    = 118
	portPlease2Req = 122
	port2Resp      = 119
	namesReq       = 110
)

// maxRequest caps a request. The longest, ALIVE2, is 13 bytes, a name of
// up to 255 and its extra data, which nodes leave empty.
const maxRequest = 1024

// Entry is one node as epmd reports it.
type Entry struct {
	Name     string // the part before @
	Port     int
	NodeType byte // 77 normal, 72 hidden
	Protocol byte // 0: TCP/IPv4
	High     uint16
	Low      uint16
	Extra    []byte
}

// defaults are what a current OTP node registers with.
func (e Entry) withDefaults() Entry {
	if e.NodeType == 0 {
		e.NodeType = 77
	}
	if e.High == 0 {
		e.High, e.Low = 6, 5
	}
	return e
}

var (
	errTooLong = errors.New("epmd: request too long")
	errEmpty   = errors.New("epmd: empty request")
)

// readRequest reads one length-prefixed request into buf, refusing one that
// would not fit before reading any of it.
func readRequest(r io.Reader, buf *[maxRequest]byte) ([]byte, error) {
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(buf[:2]))
	if n == 0 {
		return nil, errEmpty
	}
	if n > len(buf) {
		return nil, errTooLong
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// parseAlive2 parses an ALIVE2 request; on error the entry holds what
// could be read of it, for the log.
func parseAlive2(b []byte) (Entry, error) {
	if len(b) < 10 {
		return Entry{}, errors.New("short request")
	}
	e := Entry{
		Port:     int(binary.BigEndian.Uint16(b[0:])),
		NodeType: b[2],
		Protocol: b[3],
		High:     binary.BigEndian.Uint16(b[4:]),
		Low:      binary.BigEndian.Uint16(b[6:]),
	}
	nlen := int(binary.BigEndian.Uint16(b[8:]))
	b = b[10:]
	if len(b) < nlen+2 {
		return e, errors.New("short name")
	}
	e.Name = string(b[:nlen])
	b = b[nlen:]
	elen := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) < elen {
		return e, errors.New("short extra")
	}
	e.Extra = append([]byte(nil), b[:elen]...)
	if !ValidName(e.Name) {
		return e, errors.New("invalid node name")
	}
	return e, nil
}

func isLoopback(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}
