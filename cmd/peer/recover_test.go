package main

import (
	"os/exec"
	"strings"
	"testing"

	"peer/placement"
)

func TestParseVoters(t *testing.T) {
	got, err := parseVoters([]string{"n1", " n2=10.0.0.2:7947"})
	if err != nil || len(got) != 2 || got[0] != (placement.Voter{Name: "n1"}) || got[1] != (placement.Voter{Name: "n2", Addr: "10.0.0.2:7947"}) {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := parseVoters([]string{"=10.0.0.2:7947"}); err == nil {
		t.Fatal("a voter without a name accepted")
	}
}

// TestRecoverRefusesAnEmptyDir: `peer recover` on a dir that is no node's data dir fails
// with a message and writes nothing there.
func TestRecoverRefusesAnEmptyDir(t *testing.T) {
	dir := t.TempDir()
	out, err := exec.Command(buildPeer(t), "recover", "--data", dir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not a node's data dir") {
		t.Fatalf("peer recover on an empty dir: %v\n%s", err, out)
	}
}
