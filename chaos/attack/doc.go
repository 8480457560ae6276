// Package attack holds the hostile-client tests: each attack runs against real peer
// processes on loopback while a legitimate ffmpeg stream plays, and afterwards checks
// that the node is up, the stream still plays, its API answers and its RSS grew by less
// than the attack's stated bound. Each test logs one "ATTACK" row (attack, result, RSS
// before and after) for the security table in docs/security.md.
package attack
