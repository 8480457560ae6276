package conf

import (
	"path/filepath"
	"testing"
)

// TestExamplesCheck: every example config in conf/examples is one peer accepts.
func TestExamplesCheck(t *testing.T) {
	files, err := filepath.Glob("examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, f := range files {
		if _, err := LoadFile(f); err != nil {
			t.Errorf("%v", err)
		}
	}
}
