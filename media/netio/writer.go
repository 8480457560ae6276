// Package netio holds the socket helpers every server and link shares. It imports
// nothing of peer's, so any package may use it.
//
// A Writer writes byte vectors to a player's TCP connection in two ways: without
// blocking, from the fan-out, which must never wait for one slow player; and blocking
// under a write deadline, from the player's own goroutine. Bytes one write leaves behind
// go out first on the next, so the stream stays whole whichever way it is written.
// Reader is the read side's fast path: a raw read(2) that keeps the runtime's sysmon
// asleep.
//
// A Writer is not safe for concurrent use: its callers serialize writes.
package netio

import (
	"net"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// maxVecs is IOV_MAX on Linux: the most vectors one sendmsg takes.
const maxVecs = 1024

// Writer sends vectors to one connection.
type Writer struct {
	conn    net.Conn
	raw     syscall.RawConn // nil when conn is not a socket: TryWrite then leaves all pending
	writes  WriteDeadline
	pending [][]byte // what the socket has not taken yet, in order (a view of store)
	store   [][]byte
	join    [][]byte // pending followed by new vectors, for one write

	// The RawConn callbacks, made once (a closure per write would allocate): try writes
	// tryRest, leaves what is left there and, with block, asks the poller to wait for
	// room until nothing is; tryOnce is try for RawConn.Control.
	try     func(fd uintptr) bool
	tryOnce func(fd uintptr)
	block   bool
	tryRest [][]byte
	tryN    int
	tryErr  error
}

// iovecs is the sendmsg scratch of every Writer: a write needs its iovec array only
// during the call, so no player keeps one.
var iovecs = sync.Pool{New: func() any { return new([]syscall.Iovec) }}

// vectors is the scratch callers build a write's byte vectors in (Vectors).
var vectors = sync.Pool{New: func() any { return new([][]byte) }}

// Vectors returns empty scratch for the byte vectors of one write. What a write leaves
// pending the Writer copies, so the scratch goes back with PutVectors as soon as the
// write returns, and a player that keeps up holds no vectors of its own.
func Vectors() *[][]byte { return vectors.Get().(*[][]byte) }

// PutVectors gives back scratch from Vectors, forgetting what it pointed to.
func PutVectors(v *[][]byte) {
	clear(*v)
	if cap(*v) > maxVecs {
		*v = nil // a start burst's: let it go
	}
	*v = (*v)[:0]
	vectors.Put(v)
}

// New writes to conn; blocking writes give up after timeout without progress.
func New(conn net.Conn, timeout time.Duration) *Writer {
	w := &Writer{conn: conn, writes: WriteDeadline{Timeout: timeout}}
	w.try = func(fd uintptr) bool {
		var n int
		n, w.tryRest, w.tryErr = w.writev(fd, w.tryRest)
		w.tryN += n
		return !w.block || w.tryErr != nil || len(w.tryRest) == 0
	}
	w.tryOnce = func(fd uintptr) { w.try(fd) }
	if sc, ok := conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			w.raw = raw
		}
	}
	return w
}

// Pending reports bytes waiting for a blocking write.
func (w *Writer) Pending() bool { return len(w.pending) > 0 }

// withPending returns pending followed by bufs.
func (w *Writer) withPending(bufs [][]byte) [][]byte {
	if len(w.pending) == 0 {
		return bufs
	}
	w.join = append(append(w.join[:0], w.pending...), bufs...)
	return w.join
}

// setPending keeps rest (which never aliases store) for the next write.
func (w *Writer) setPending(rest [][]byte) {
	clear(w.store)
	w.store = append(w.store[:0], rest...)
	w.pending = w.store
	clear(w.join)
}

// TryWrite writes anything pending and then bufs as far as the socket takes them now,
// without blocking. What it did not take stays pending (the bytes bufs point to must
// stay unchanged until then; the bufs slice itself may be reused at once); complete
// reports that nothing is.
func (w *Writer) TryWrite(bufs [][]byte) (n int, complete bool, err error) {
	rest := w.withPending(bufs)
	if w.raw != nil {
		var err error
		n, rest, err = w.rawWrite(rest, false)
		if err != nil {
			return n, false, err
		}
	}
	w.setPending(rest)
	return n, len(w.pending) == 0, nil
}

// rawWrite writes bufs through the RawConn: once, or with block until all went out.
// Once is RawConn.Control, not Write: a write that never waits needs neither the poller
// nor the deadline (the blocking Write arms its own), and RawConn.Write's poller reset
// and write lock were a tenth of the fan-out's own CPU. Control still holds a reference
// to the descriptor, so a concurrent Close cannot have it reused under the write.
func (w *Writer) rawWrite(bufs [][]byte, block bool) (int, [][]byte, error) {
	w.block, w.tryRest, w.tryN, w.tryErr = block, bufs, 0, nil
	var err error
	if block {
		err = w.raw.Write(w.try)
	} else {
		err = w.raw.Control(w.tryOnce)
	}
	n, rest := w.tryN, w.tryRest
	w.tryRest = nil
	if err == nil {
		err = w.tryErr
	}
	return n, rest, err
}

// writev writes bufs with nonblocking vectored sends (sendmsg) until the socket is full or all went
// out, and returns what is left.
func (w *Writer) writev(fd uintptr, bufs [][]byte) (int, [][]byte, error) {
	scratch := iovecs.Get().(*[]syscall.Iovec)
	defer func() {
		clear(*scratch) // pointers into tags the pool must not keep alive
		*scratch = (*scratch)[:0]
		iovecs.Put(scratch)
	}()
	total := 0
	for len(bufs) > 0 {
		vecs := (*scratch)[:0]
		want := 0
		for _, b := range bufs {
			if len(vecs) == maxVecs {
				break
			}
			if len(b) == 0 {
				continue
			}
			v := syscall.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			vecs = append(vecs, v)
			want += len(b)
		}
		*scratch = vecs
		if want == 0 {
			return total, nil, nil
		}
		// RawSyscall: the socket is nonblocking, so the call never parks the thread, and
		// skipping the runtime's syscall bookkeeping keeps sysmon asleep and from handing
		// this P to another thread mid-write (see Reader). sendmsg, not writev: it goes
		// to the socket without the file layer's checks and notifications, about a third
		// of what writev cost the kernel besides TCP (perf, 1000 RTMP players); with
		// MSG_NOSIGNAL a closed peer gives EPIPE without raising SIGPIPE.
		msg := syscall.Msghdr{Iov: &vecs[0]}
		msg.Iovlen = uint64(len(vecs))
		r, _, errno := syscall.RawSyscall(syscall.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&msg)), syscall.MSG_DONTWAIT|syscall.MSG_NOSIGNAL)
		switch {
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
			return total, bufs, nil
		case errno != 0:
			return total, bufs, errno
		}
		total += int(r)
		bufs = consume(bufs, int(r))
		if int(r) < want {
			return total, bufs, nil // the socket is full
		}
	}
	return total, nil, nil
}

// consume drops the first n bytes of bufs.
func consume(bufs [][]byte, n int) [][]byte {
	for len(bufs) > 0 && n >= len(bufs[0]) {
		n -= len(bufs[0])
		bufs[0] = nil
		bufs = bufs[1:]
	}
	if n > 0 {
		bufs[0] = bufs[0][n:]
	}
	return bufs
}

// Write sends anything pending and then bufs, blocking until all went out or the
// connection failed; bufs may be empty (a flush).
func (w *Writer) Write(bufs [][]byte) (int64, error) {
	all := w.withPending(bufs)
	if len(all) == 0 {
		return 0, nil
	}
	w.writes.Arm(w.conn)
	var n int64
	var err error
	if w.raw != nil {
		// Our own writev loop rather than net.Buffers: the net package keeps an iovec
		// array per connection as large as the largest write ever made (a start burst).
		var k int
		k, _, err = w.rawWrite(all, true)
		n = int64(k)
	} else {
		nb := net.Buffers(all)
		n, err = nb.WriteTo(w.conn)
	}
	w.setPending(nil)
	w.trim()
	return n, err
}

// trim lets the pending store go once a blocking write emptied it: a player that
// keeps up holds no vectors between writes.
func (w *Writer) trim() {
	w.store, w.pending, w.join = nil, nil, nil
}
