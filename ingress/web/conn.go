package web

import (
	"net"
	"strings"
	"sync/atomic"

	"peer/ingress/limit"
)

// trackedListener hands net/http connections that know their idle pool. It refuses
// nothing at accept: the idle pool makes room.
type trackedListener struct {
	net.Listener
	pool *limit.IdlePool
}

func (l *trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &trackedConn{Conn: c, pool: l.pool}, nil
}

type trackedConn struct {
	net.Conn
	pool   *limit.IdlePool
	served atomic.Bool // net/http parsed a request from it
}

// mediaWriter is the connection a player's media is written to: the TCP connection
// itself, since net.Buffers goes out with one writev only on the net package's own types
// (through the trackedConn wrapper it would be one write per tag).
func mediaWriter(c net.Conn) net.Conn {
	if tc, ok := c.(*trackedConn); ok {
		return tc.Conn
	}
	return c
}

// splitMedia splits "test.flv" into ("test", ".flv").
func splitMedia(file string) (string, string) {
	i := strings.LastIndexByte(file, '.')
	if i < 0 {
		return file, ""
	}
	return file[:i], file[i:]
}
