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

// RawConn is conn's RawConn, or nil when conn is not a socket.
func RawConn(conn net.Conn) syscall.RawConn {
	if sc, ok := conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			return raw
		}
	}
	return nil
}

// NewReader reads conn through a Reader when it is a socket, else returns conn.
func NewReader(conn net.Conn) io.Reader {
	raw := RawConn(conn)
	if raw == nil {
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

// WaitReadable blocks until raw's socket has bytes to read, has hung up or failed, or
// its read deadline passed, and reads nothing. A reader that is idle most of its life (a
// player's: a few acks a minute) waits here in a goroutine of its own, instead of deep
// in its protocol's parser: a goroutine that only waits stays on Go's smallest stack
// (2 KiB), and the one that parses what came ends once it is read, while a grown stack
// parked in a parser is never shrunk (the collector halves one only when its frames
// and an 800-byte guard use under a quarter of it).
func WaitReadable(raw syscall.RawConn) error {
	return raw.Read(peekOne)
}

// peekOne reports whether a read would not block. The byte it peeks lands in a shared
// buffer nobody reads: a buffer of its own would escape to the heap on every wait.
func peekOne(fd uintptr) bool {
	_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&peekSink[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return errno != syscall.EAGAIN && errno != syscall.EINTR
}

var peekSink [1]byte
