package attack

import (
	"net"
	"testing"
	"time"
)

// TestGarbageAfterConnect is the simplest attack: random bytes where a handshake belongs.
func TestGarbageAfterConnect(t *testing.T) {
	tg := newTarget(t, 1)
	tg.attack(0, "random bytes instead of an RTMP handshake, 50 connections", 20, func() {
		junk := make([]byte, 8192)
		for i := range junk {
			junk[i] = byte(i*7 + 3)
		}
		for range 50 {
			c, err := net.DialTimeout("tcp", tg.nodes[0].RTMP, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c.Write(junk)
			c.Close()
		}
	})
}
