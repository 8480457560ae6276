package netio

// WriteDeadline keeps write deadlines on long-lived streaming connections without
// resetting a timer on every write: a player's connection is written to tens of times a
// second, and each SetWriteDeadline costs a runtime timer update.

import (
	"net"
	"time"
)

// WriteDeadline refreshes a connection's write deadline at most every timeout/8, so a write
// never blocks longer than timeout plus that slack.
type WriteDeadline struct {
	Timeout time.Duration
	next    time.Time // when to refresh again
}

// Arm sets conn's write deadline if the last one is getting old.
func (w *WriteDeadline) Arm(conn net.Conn) {
	now := time.Now()
	if now.Before(w.next) {
		return
	}
	conn.SetWriteDeadline(now.Add(w.Timeout))
	w.next = now.Add(w.Timeout / 8)
}
