package chaos

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"peer/chaos/avtest"
	"peer/chaos/procs"
)

// TestControlPlane runs the cluster issue's checks on real processes: join and agreed
// view, leader SIGKILL and re-election, restart with the same data dir at new ports, a
// node without the key refused, master promotion after SIGKILL, and a stale master
// fenced after SIGSTOP/SIGCONT. It logs the figures the issue asks for.
func TestControlPlane(t *testing.T) {
	avtest.RequireTools(t)
	c, agree := startCluster(t, 3, nil)
	t.Logf("FIGURE view agreed: %v after starting 3 nodes", agree.Round(time.Millisecond))

	t.Run("LeaderKill", func(t *testing.T) {
		v, _ := c.Nodes[0].View(context.Background())
		old := c.ByName(v.Leader)
		old.Kill()
		killed := time.Now()
		survivors := c.Others(old.Name)
		var leader string
		eventually(t, 10*time.Second, "a new leader", func() bool {
			l := ""
			for _, n := range survivors {
				v, err := n.View(context.Background())
				if err != nil || v.Leader == "" || v.Leader == old.Name || (l != "" && v.Leader != l) {
					return false
				}
				l = v.Leader
			}
			leader = l
			return true
		})
		t.Logf("FIGURE leader failover: %v (old %s, new %s)", time.Since(killed).Round(time.Millisecond), old.Name, leader)

		// Same data dir, new ports: it comes back as itself.
		restarted := c.NewNode(old.Name)
		restarted.Data = old.Data
		if err := restarted.Start(survivors[0].Gossip); err != nil {
			t.Fatal(err)
		}
		c.Nodes = append(c.Others(old.Name), restarted)
		waitAgreed(t, c.Nodes, 20*time.Second)
	})

	t.Run("WrongKeyRefused", func(t *testing.T) {
		bad := &procs.Cluster{Bin: peerBin, Key: "not-the-key", Dir: t.TempDir()}
		intruder := bad.NewNode("intruder")
		defer bad.StopAll()
		if err := intruder.Start(c.Nodes[0].Gossip); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		v, err := c.Nodes[0].View(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range v.Members {
			if m.Name == "intruder" {
				t.Fatalf("a node without the key joined: %+v", v.Members)
			}
		}
		eventually(t, 5*time.Second, "the refusal logged", func() bool {
			for _, n := range c.Nodes {
				if logged(n, "without the cluster key") {
					return true
				}
			}
			return false
		})
	})

	t.Run("MasterPromotion", func(t *testing.T) {
		pub := publish(t, rtmpURL(c.Nodes[0], "live/promo"))
		var a procs.Assignment
		eventually(t, 15*time.Second, "the stream placed with replicas", func() bool {
			var ok bool
			a, ok = assignment(c.Nodes[1], "live/promo")
			return ok && len(a.Replicas) == 2
		})
		master := c.ByName(a.Master)
		master.Kill()
		pub.Stop()
		killed := time.Now()
		survivor := c.Others(master.Name)[0]
		eventually(t, 10*time.Second, "a replica promoted", func() bool {
			b, ok := assignment(survivor, "live/promo")
			return ok && b.Master != a.Master && contains(a.Replicas, b.Master) && b.Epoch > a.Epoch
		})
		t.Logf("FIGURE master promotion: %v after SIGKILL of %s", time.Since(killed).Round(time.Millisecond), master.Name)
		restarted := c.NewNode(master.Name)
		restarted.Data = master.Data
		if err := restarted.Start(survivor.Gossip); err != nil {
			t.Fatal(err)
		}
		c.Nodes = append(c.Others(master.Name), restarted)
		waitAgreed(t, c.Nodes, 20*time.Second)
	})

	t.Run("StaleMasterFenced", func(t *testing.T) {
		master := c.Nodes[0]
		pub := publish(t, rtmpURL(master, "live/fence"))
		var a procs.Assignment
		eventually(t, 15*time.Second, "the stream placed", func() bool {
			var ok bool
			a, ok = assignment(c.Nodes[1], "live/fence")
			return ok && a.Master == master.Name
		})
		master.Pause()
		other := c.Others(master.Name)[0]
		eventually(t, 10*time.Second, "the stream moved off the frozen master", func() bool {
			b, ok := assignment(other, "live/fence")
			return !ok || b.Master != master.Name
		})
		master.Resume()
		woke := time.Now()
		eventually(t, 10*time.Second, "the woken master to learn it is stale", func() bool {
			b, ok := assignment(master, "live/fence")
			return (!ok || b.Master != master.Name) && logged(master, "publisher fenced off")
		})
		select {
		case <-pub.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("the stale master kept its publisher")
		}
		t.Logf("FIGURE stale master fenced: %v after SIGCONT", time.Since(woke).Round(time.Millisecond))
	})
}

// TestFiveNodes: five processes keep three voters (five from seven on); a dead voter is
// replaced by a promoted nonvoter; `peer leave` hands a node's streams off and the node
// shows as left.
func TestFiveNodes(t *testing.T) {
	avtest.RequireTools(t)
	c, agree := startCluster(t, 5, nil)
	t.Logf("FIGURE 5-node view agreed: %v", agree.Round(time.Millisecond))
	roles := func(n *procs.Node) map[string]string {
		v, err := n.View(context.Background())
		if err != nil {
			return nil
		}
		out := map[string]string{}
		for _, m := range v.Members {
			out[m.Name] = m.Raft + "/" + m.State
		}
		return out
	}
	countVoters := func(r map[string]string) int {
		k := 0
		for _, role := range r {
			if role == "leader/alive" || role == "voter/alive" {
				k++
			}
		}
		return k
	}
	eventually(t, 15*time.Second, "3 voters and 2 nonvoters", func() bool { return countVoters(roles(c.Nodes[0])) == 3 })

	// Kill a voter that is not the leader.
	v, _ := c.Nodes[0].View(context.Background())
	var victim *procs.Node
	for _, m := range v.Members {
		if m.Raft == "voter" {
			victim = c.ByName(m.Name)
			break
		}
	}
	victim.Kill()
	killed := time.Now()
	survivor := c.Others(victim.Name)[0]
	eventually(t, 20*time.Second, "the dead voter replaced", func() bool {
		r := roles(survivor)
		return countVoters(r) == 3 && r[victim.Name] != "voter/alive"
	})
	t.Logf("FIGURE dead voter replaced: %v after SIGKILL", time.Since(killed).Round(time.Millisecond))

	// Graceful leave of a node that masters a stream.
	leaver := c.Others(victim.Name)[1]
	pub := publish(t, rtmpURL(leaver, "live/leave"))
	eventually(t, 15*time.Second, "stream mastered by the leaver", func() bool {
		a, ok := assignment(survivor, "live/leave")
		return ok && a.Master == leaver.Name
	})
	out, err := exec.Command(peerBin, "leave", "--api", "http://"+leaver.HTTP).CombinedOutput()
	if err != nil {
		t.Fatalf("peer leave: %v\n%s", err, out)
	}
	eventually(t, 10*time.Second, "the leaver shown as left and its stream handed off", func() bool {
		a, ok := assignment(survivor, "live/leave")
		return roles(survivor)[leaver.Name] == "none/left" && (!ok || a.Master != leaver.Name)
	})
	eventually(t, 10*time.Second, "the leaver's process to exit", func() bool { return !leaver.Running() })
	pub.Stop()
}
