package ratelog

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestWarnIsRateLimitedPerKind(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	l := New(zap.New(core), time.Minute)
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }

	for range 1000 {
		l.Warn("conn-limit", "connection refused")
	}
	l.Warn("bad-amf", "bad command")
	if got := logs.Len(); got != 2 {
		t.Fatalf("logged %d lines for 1001 refusals of two kinds, want 2", got)
	}
	now = now.Add(time.Minute)
	if !l.Warn("conn-limit", "connection refused") {
		t.Fatal("a refusal one interval later was not logged")
	}
	last := logs.All()[logs.Len()-1]
	if got := last.ContextMap()["suppressed"]; got != uint64(999) {
		t.Fatalf("suppressed = %v, want 999", got)
	}
}

func TestKindsAreBounded(t *testing.T) {
	core, _ := observer.New(zap.WarnLevel)
	l := New(zap.New(core), time.Minute)
	for i := range 10 * maxKinds {
		l.Warn(string(rune(i)), "x")
	}
	if len(l.kinds) > maxKinds {
		t.Fatalf("%d kinds tracked, cap %d", len(l.kinds), maxKinds)
	}
}
