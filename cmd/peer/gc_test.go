package main

import (
	"runtime/debug"
	"testing"
)

// TestSetGCPercent: --gc-percent sets the collector's percentage, GOGC in the
// environment keeps the runtime's, and a percentage that is not positive is refused.
func TestSetGCPercent(t *testing.T) {
	was := debug.SetGCPercent(100)
	defer debug.SetGCPercent(was)
	if err := setGCPercent(50, ""); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(100); got != 50 {
		t.Fatalf("GC percent %d after --gc-percent 50", got)
	}
	if err := setGCPercent(50, "200"); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC percent %d with GOGC set; the runtime's (100 here) should stay", got)
	}
	if err := setGCPercent(0, ""); err == nil {
		t.Fatal("--gc-percent 0 accepted")
	}
}
