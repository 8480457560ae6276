package route

import (
	"fmt"
	"testing"
)

// TestRendezvousEven: edges (keyed by node name) and redirected players (keyed by client
// IP) spread evenly over 3 and 5 origins, within 3 percentage points over 10,000 keys.
// Raw FNV-1a, used here before, gave 50/25/25 % and 25/12.5/12.5/25/25 %.
func TestRendezvousEven(t *testing.T) {
	keyShapes := map[string]func(i int) string{
		"edge": func(i int) string { return fmt.Sprintf("n%d", i) },
		"ip":   func(i int) string { return fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255) },
	}
	for _, origins := range [][]string{{"n1", "n2", "n3"}, {"n1", "n2", "n3", "n4", "n5"}} {
		for shape, key := range keyShapes {
			const keys = 10000
			wins := map[string]int{}
			for i := range keys {
				best, bs := "", uint64(0)
				for _, o := range origins {
					if s := rendezvous(key(i), o); best == "" || s > bs {
						best, bs = o, s
					}
				}
				wins[best]++
			}
			even := 100.0 / float64(len(origins))
			for _, o := range origins {
				if share := 100 * float64(wins[o]) / keys; share < even-3 || share > even+3 {
					t.Errorf("%d origins, %s keys: %s wins %.1f %% (even %.1f %%): %v", len(origins), shape, o, share, even, wins)
				}
			}
		}
	}
}
