// Package allocs measures what a parser allocates, for the media fuzz targets: each
// checks that an input of n bytes costs at most Bound(n), so no length field read from
// the network buys memory that the peer did not send.
//
// It is a leaf: the standard library only.
package allocs

import "runtime"

// Bound is the most a parser may allocate for an input of n bytes: a constant for the
// parser's own state plus a small multiple of the input.
func Bound(n int) uint64 { return 1<<20 + 8*uint64(n) }

// Of runs f and returns the bytes allocated meanwhile (by the whole process: the fuzzing
// engine's own allocations are small against Bound).
func Of(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
