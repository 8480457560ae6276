package netio

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// Reader reads a socket through its RawConn with a raw read(2), waiting on the poller
// (and honouring read deadlines) when nothing is there. The socket is nonblocking, so the
// call never parks the thread; skipping the runtime's syscall bookkeeping matters because
// an exit from a syscall wakes the runtime's sysmon out of its deep sleep, after which it
// polls every 20 µs for a millisecond or more. A publisher's frames arrive after the node
// went idle, so every frame paid that: 14% of a node's CPU at 500 players, measured side
// by side.
type Reader struct {
	raw  syscall.RawConn
	read func(fd uintptr) bool // made once: a closure per read would allocate
	buf  []byte
	n    int
	err  error
}

// NewReader reads conn through a Reader when it is a socket, else returns conn.
func NewReader(conn net.Conn) io.Reader {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return conn
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return conn
	}
	r := &Reader{raw: raw}
	r.read = func(fd uintptr) bool {
		for {
			n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&r.buf[0])), uintptr(len(r.buf)))
			switch errno {
			case 0:
				r.n = int(n)
				return true
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // wait for the poller
			default:
				r.err = os.NewSyscallError("read", errno)
				return true
			}
		}
	}
	return r
}

// Read reads what the socket has, at most len(p) bytes; 0 bytes read is io.EOF.
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.buf, r.n, r.err = p, 0, nil
	err := r.raw.Read(r.read)
	r.buf = nil
	switch {
	case err != nil:
		return 0, err
	case r.err != nil:
		return 0, r.err
	case r.n == 0:
		return 0, io.EOF
	}
	return r.n, nil
}
