package netio

import (
	"net"
	"testing"
	"time"
)

type countConn struct {
	net.Conn
	sets []time.Time
}

func (c *countConn) SetWriteDeadline(t time.Time) error { c.sets = append(c.sets, t); return nil }

func TestArmRefreshesRarely(t *testing.T) {
	c := &countConn{}
	w := WriteDeadline{Timeout: 800 * time.Millisecond}
	for range 1000 {
		w.Arm(c)
	}
	if len(c.sets) != 1 || time.Until(c.sets[0]) < 700*time.Millisecond {
		t.Fatalf("deadlines set: %v", c.sets)
	}
	time.Sleep(110 * time.Millisecond)
	w.Arm(c)
	if len(c.sets) != 2 || !c.sets[1].After(c.sets[0]) {
		t.Fatalf("deadline not refreshed after timeout/8: %v", c.sets)
	}
}
