package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"peer/placement"
)

type recoverCmd struct {
	Data   string   `help:"The stopped node's data dir (its --data)." required:"" env:"PEER_DATA"`
	Voters []string `help:"The survivors that form the new cluster, NAME or NAME=RAFT-HOST:PORT (an address defaults to the one last stored); the same list on every survivor. Default: this node alone." sep:","`
}

// Run rewrites the data dir's raft configuration (placement.Recover) and says what it did.
func (c *recoverCmd) Run() error {
	voters, err := parseVoters(c.Voters)
	if err != nil {
		return err
	}
	rec, err := placement.Recover(c.Data, voters, nil)
	if err != nil {
		return err
	}
	list := func(vs []placement.Voter) string {
		s := make([]string, len(vs))
		for i, v := range vs {
			s[i] = v.Name + "=" + v.Addr
		}
		return strings.Join(s, ", ")
	}
	lost := strings.Join(rec.Lost, ", ")
	if lost == "" {
		lost = "none"
	}
	fmt.Printf("Recovered node %s in %s.\n", rec.Node, c.Data)
	fmt.Printf("  voters before:    %s\n", list(rec.Before))
	fmt.Printf("  voters now:       %s\n", list(rec.Voters))
	fmt.Printf("  recorded as left: %s\n", lost)
	fmt.Printf("  kept:             %d stream(s), the raft state up to index %d (term %d)\n", rec.Streams, rec.Index, rec.Term)
	if _, err := os.Stat(filepath.Join(c.Data, "cluster-key")); err == nil {
		fmt.Printf("  cluster key:      unchanged (%s)\n", filepath.Join(c.Data, "cluster-key"))
	}
	fmt.Println("\nStart the node on this data dir with its usual flags (peer run); it leads the new configuration once")
	fmt.Println("a majority of the voters above runs. Other survivors join it (peer join THIS-NODE:GOSSIP-PORT), so do new nodes.")
	return nil
}

// parseVoters reads NAME[=ADDR] items.
func parseVoters(items []string) ([]placement.Voter, error) {
	var out []placement.Voter
	for _, it := range items {
		name, addr, _ := strings.Cut(strings.TrimSpace(it), "=")
		if name == "" {
			return nil, fmt.Errorf("--voters %q: want NAME or NAME=RAFT-HOST:PORT", it)
		}
		out = append(out, placement.Voter{Name: name, Addr: addr})
	}
	return out, nil
}
