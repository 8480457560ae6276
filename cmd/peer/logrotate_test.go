package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"peer/chaos/avtest"
	"peer/chaos/procs"
)

// TestLogrotate rotates a node's --log-file with Debian's logrotate and the seed's rules
// (daily, rotate 7, compress, size 16M), once with copytruncate and once with create and
// a SIGHUP, while players come and go: every session's start line is in one of the files.
func TestLogrotate(t *testing.T) {
	avtest.RequireTools(t)
	logrotate, err := exec.LookPath("logrotate")
	if err != nil {
		logrotate = "/usr/sbin/logrotate" // Debian's, when /usr/sbin is not on PATH
		if _, serr := os.Stat(logrotate); serr != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("logrotate is missing (scripts/install-tools.sh installs it)")
			}
			t.Skip("logrotate is missing")
		}
	}
	bin := buildPeer(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "peer.log")
	rtmpAddr, httpAddr := procs.FreeAddr(), procs.FreeAddr()
	cmd := exec.Command(bin, "run", "--name", "rot", "--rtmp", rtmpAddr, "--http", httpAddr,
		"--gossip", procs.FreeAddr(), "--raft", procs.FreeAddr(), "--data", filepath.Join(dir, "data"),
		"--log-file", logPath, "--log-format", "json")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() { cmd.Process.Kill(); <-exited }()
	pub, err := avtest.Publish("rtmp://"+rtmpAddr+"/live/rot", avtest.PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Stop()

	rules := func(mode string) string {
		p := filepath.Join(dir, mode+".conf")
		body := fmt.Sprintf("%s {\n  daily\n  rotate 7\n  compress\n  size 16M\n  missingok\n  %s\n", logPath, mode)
		if mode == "create" {
			body += fmt.Sprintf("  postrotate\n    kill -HUP %d\n  endscript\n", cmd.Process.Pid)
		}
		if err := os.WriteFile(p, []byte(body+"}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rotate := func(mode string) {
		out, err := exec.Command(logrotate, "-f", "-s", filepath.Join(dir, "state"), rules(mode)).CombinedOutput()
		if err != nil {
			t.Fatalf("logrotate (%s): %v\n%s", mode, err, out)
		}
	}
	sessions := 0
	play := func() {
		// One HTTP-FLV session: read a little of the stream, then hang up.
		deadline := time.Now().Add(20 * time.Second)
		for {
			resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + httpAddr + "/live/rot.flv")
			if err == nil && resp.StatusCode == http.StatusOK {
				_, err = io.ReadFull(resp.Body, make([]byte, 4096))
				resp.Body.Close()
				if err == nil {
					sessions++
					return
				}
			} else if err == nil {
				resp.Body.Close()
			}
			if time.Now().After(deadline) {
				t.Fatalf("no HTTP-FLV session: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	for round, mode := range []string{"copytruncate", "create", "copytruncate", "create"} {
		for range 5 {
			play()
		}
		rotate(mode)
		t.Logf("round %d: rotated with %s", round, mode)
	}
	for range 5 {
		play()
	}
	// Every session logs "play start" once; count them in every file, rotated or not.
	want := sessions
	eventually := time.Now().Add(15 * time.Second)
	for {
		got := countLines(t, dir, `"play start"`)
		if got == want {
			break
		}
		if got > want || time.Now().After(eventually) {
			t.Fatalf("%d play start lines in the log files, want %d", got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if countLines(t, dir, "log file reopened") != 2 {
		t.Fatalf("SIGHUP did not reopen the log file twice")
	}
}

// countLines counts lines containing part in peer.log and its rotated copies.
func countLines(t *testing.T, dir, part string) int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "peer.log*"))
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if b, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		n += strings.Count(string(b), part)
	}
	return n
}
