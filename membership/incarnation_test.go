package membership

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestNextIncarnationMonotonic: each start gets a larger incarnation than the last one,
// even when the stored value is ahead of the wall clock (the clock went back since:
// an hour here), and a damaged file is an error, not a silent reset.
func TestNextIncarnationMonotonic(t *testing.T) {
	dir := t.TempDir()
	a, err := NextIncarnation(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NextIncarnation(dir)
	if err != nil || b <= a {
		t.Fatalf("second start: %d after %d (%v)", b, a, err)
	}
	ahead := time.Now().Add(time.Hour).UnixNano()
	if err := os.WriteFile(filepath.Join(dir, incarnationFile), []byte(strconv.FormatInt(ahead, 10)), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := NextIncarnation(dir)
	if err != nil || c != ahead+1 {
		t.Fatalf("after the clock went back: %d, want %d (%v)", c, ahead+1, err)
	}
	if err := os.WriteFile(filepath.Join(dir, incarnationFile), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NextIncarnation(dir); err == nil {
		t.Fatal("accepted a damaged incarnation file")
	}
}
