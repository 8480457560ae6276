package main

import (
	"syscall"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// The soft limit ends at the hard one, and a hard limit too low for max_connections
// is said at start.
func TestRaiseFileLimit(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	raiseFileLimit(zap.New(core), 10)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur != lim.Max {
		t.Fatalf("soft limit %d, hard %d", lim.Cur, lim.Max)
	}
	if logs.FilterMessageSnippet("low").Len() != 0 {
		t.Fatalf("warned for 10 connections: %v", logs.All())
	}
	raiseFileLimit(zap.New(core), int(lim.Max))
	if logs.FilterMessageSnippet("open-file limit is low").Len() != 1 {
		t.Fatalf("no warning for max_connections = the hard limit: %v", logs.All())
	}
}
