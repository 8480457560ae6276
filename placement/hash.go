package placement

import "hash/fnv"

// RendezvousHash scores node for key in highest-random-weight (rendezvous) hashing: the
// node with the highest score wins key, and removing a node moves only the keys it won.
// It is the one hash for every rendezvous choice in the cluster (replica placement,
// an edge's origin, a redirected player's node). FNV-1a alone is badly mixed for short,
// similar inputs (node names, IP addresses: 3 origins got 50/25/25 % of the edges), so
// its sum goes through the splitmix64 finalizer, which spreads every input bit over
// the whole word.
func RendezvousHash(key, node string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write([]byte(node))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
