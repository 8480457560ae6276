package chaos

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Network partitions on loopback.
//
// Every node of a chaos cluster runs under its own unprivileged uid (a tiny wrapper
// script execs `setpriv --reuid=UID ... peer "$@"`, so the PID the harness signals is
// the peer's own). A partition of node X from the rest is a set of iptables rules in a
// chain of our own, jumped to from OUTPUT on lo:
//
//	packets owned by X's uid to any port of another node        -> DROP
//	packets owned by another node's uid to any port of X          -> DROP
//	packets of a connection both X and another node sent on       -> DROP
//
// The last rule catches connections established before the cut, in the direction the
// port rules miss (the server's packets to the client's ephemeral port): every node's
// packets OR a bit of its own into the connection's conntrack mark, always.
//
// Node-to-node traffic (gossip UDP+TCP, raft/RPC, RTMP relays) is cut both ways while
// the harness's own clients (players, publishers, API polls: uid 0) still reach X, as a
// client on X's side of a network split would. Healing flushes the chain; the chain and
// its jump are removed when the run ends, also on failure and on SIGINT/SIGTERM.

const chainPrefix = "PEERCHAOS"

type partitioner struct {
	mu      sync.Mutex
	ok      bool
	reason  string
	chain   string
	uidBase int
	cut     string // node currently cut off, "" if none
	closed  bool
	marks   [][]string // standing rules: each node ORs its bit into the conntrack mark
}

func nodeBit(i int) uint32 { return 1 << (16 + uint(i)) }

// markNodes installs the standing conntrack-mark rules for n nodes.
func (p *partitioner) markNodes(n int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range n {
		bit := fmt.Sprintf("0x%x", nodeBit(i))
		p.marks = append(p.marks, []string{"-m", "owner", "--uid-owner", strconv.Itoa(p.uid(i)), "-j", "CONNMARK", "--or-mark", bit})
	}
	return p.addMarks()
}

func (p *partitioner) addMarks() error {
	for _, m := range p.marks {
		if out, err := ipt(append([]string{"-A", p.chain}, m...)...); err != nil {
			return fmt.Errorf("iptables: %v: %s", err, out)
		}
	}
	return nil
}

// newPartitioner checks that this machine can partition loopback traffic by uid and
// prepares an empty chain. When it cannot, ok is false and reason says why.
func newPartitioner() *partitioner {
	p := &partitioner{chain: chainPrefix + strconv.Itoa(os.Getpid()), uidBase: 200000 + (os.Getpid()%100000)*16}
	if os.Geteuid() != 0 {
		p.reason = "not running as root (iptables owner match and per-node uids need root)"
		return p
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		p.reason = "iptables is not installed (apt-get install iptables); partitions need it"
		return p
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		p.reason = "setpriv (util-linux) is not installed; nodes cannot run under their own uids"
		return p
	}
	removeStaleChains()
	if out, err := ipt("-N", p.chain); err != nil {
		p.reason = "iptables cannot create a chain here: " + strings.TrimSpace(out)
		return p
	}
	if out, err := ipt("-I", "OUTPUT", "1", "-o", "lo", "-j", p.chain); err != nil {
		ipt("-X", p.chain)
		p.reason = "iptables cannot hook OUTPUT here: " + strings.TrimSpace(out)
		return p
	}
	// The owner match must work on this kernel: add and remove a probe rule.
	probe := []string{p.chain, "-m", "owner", "--uid-owner", strconv.Itoa(p.uidBase), "-j", "DROP"}
	if out, err := ipt(append([]string{"-A"}, probe...)...); err != nil {
		p.close()
		p.reason = "iptables owner match unavailable: " + strings.TrimSpace(out)
		return p
	}
	ipt(append([]string{"-D"}, probe...)...)
	p.ok = true
	return p
}

func ipt(args ...string) (string, error) {
	out, err := exec.Command("iptables", append([]string{"-w", "5"}, args...)...).CombinedOutput()
	return string(out), err
}

// removeStaleChains deletes chains left by chaos runs whose process is gone (a run
// killed by a go test timeout cannot clean up after itself).
func removeStaleChains() {
	out, err := ipt("-S")
	if err != nil {
		return
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || f[0] != "-N" || !strings.HasPrefix(f[1], chainPrefix) {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimPrefix(f[1], chainPrefix))
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		for {
			if _, err := ipt("-D", "OUTPUT", "-o", "lo", "-j", f[1]); err != nil {
				break
			}
		}
		ipt("-F", f[1])
		ipt("-X", f[1])
	}
}

// uid of node index i (0-based).
func (p *partitioner) uid(i int) int { return p.uidBase + 1 + i }

// wrapper writes an executable that runs bin as uid and returns its path.
func (p *partitioner) wrapper(dir, bin string, uid int) (string, error) {
	path := filepath.Join(dir, fmt.Sprintf("peer-uid-%d", uid))
	script := fmt.Sprintf("#!/bin/sh\nexec setpriv --reuid=%d --regid=%d --clear-groups %s \"$@\"\n", uid, uid, bin)
	return path, os.WriteFile(path, []byte(script), 0o755)
}

type endpoint struct {
	idx   int
	uid   int
	ports []string
}

func portsOf(addrs ...string) []string {
	var out []string
	for _, a := range addrs {
		if _, port, err := net.SplitHostPort(a); err == nil {
			out = append(out, port)
		}
	}
	return out
}

// partition cuts x off from others (both directions, TCP and UDP).
func (p *partitioner) partition(name string, x endpoint, others []endpoint) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ok || p.closed {
		return fmt.Errorf("partitions unavailable: %s", p.reason)
	}
	add := func(uid int, ports []string) error {
		for _, proto := range []string{"tcp", "udp"} {
			if out, err := ipt("-A", p.chain, "-p", proto, "-m", "owner", "--uid-owner", strconv.Itoa(uid),
				"-m", "multiport", "--dports", strings.Join(ports, ","), "-j", "DROP"); err != nil {
				return fmt.Errorf("iptables: %v: %s", err, out)
			}
		}
		return nil
	}
	p.cut = name
	for _, o := range others {
		if err := add(x.uid, o.ports); err != nil {
			p.flush()
			return err
		}
		if err := add(o.uid, x.ports); err != nil {
			p.flush()
			return err
		}
		both := fmt.Sprintf("0x%x/0x%x", nodeBit(x.idx)|nodeBit(o.idx), nodeBit(x.idx)|nodeBit(o.idx))
		if out, err := ipt("-A", p.chain, "-m", "connmark", "--mark", both, "-j", "DROP"); err != nil {
			p.flush()
			return fmt.Errorf("iptables: %v: %s", err, out)
		}
	}
	return nil
}

// flush drops the partition rules, keeping the standing mark rules.
func (p *partitioner) flush() {
	ipt("-F", p.chain)
	p.addMarks()
	p.cut = ""
}

// heal removes every partition rule.
func (p *partitioner) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ok && !p.closed {
		p.flush()
	}
}

// close removes the chain and its jump; safe to call more than once.
func (p *partitioner) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	for range 4 {
		if _, err := ipt("-D", "OUTPUT", "-o", "lo", "-j", p.chain); err != nil {
			break
		}
	}
	ipt("-F", p.chain)
	ipt("-X", p.chain)
}
