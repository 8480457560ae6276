package placement

import (
	"fmt"
	"testing"
)

// TestRendezvousHashEven (the hash behind replicas, edge origins and player
// redirects): over 3 and 5 origins and 10,000 keys of the shapes the
// cluster hashes (node names, client IPs, stream names), each origin wins within 3
// percentage points of an even share. Raw FNV-1a gave 3 origins 50/25/25 %.
func TestRendezvousHashEven(t *testing.T) {
	keyShapes := map[string]func(i int) string{
		"node":   func(i int) string { return fmt.Sprintf("n%d", i) },
		"ip":     func(i int) string { return fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255) },
		"stream": func(i int) string { return fmt.Sprintf("live/s%04d", i) },
	}
	for _, origins := range [][]string{{"n1", "n2", "n3"}, {"n1", "n2", "n3", "n4", "n5"}} {
		for shape, key := range keyShapes {
			const keys = 10000
			wins := map[string]int{}
			for i := range keys {
				best, bs := "", uint64(0)
				for _, o := range origins {
					if s := RendezvousHash(key(i), o); best == "" || s > bs {
						best, bs = o, s
					}
				}
				wins[best]++
			}
			even := 100.0 / float64(len(origins))
			for _, o := range origins {
				share := 100 * float64(wins[o]) / keys
				if share < even-3 || share > even+3 {
					t.Errorf("%d origins, %s keys: %s wins %.1f %% (even %.1f %%): %v", len(origins), shape, o, share, even, wins)
				}
			}
		}
	}
}
