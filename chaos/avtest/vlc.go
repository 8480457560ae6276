package avtest

import (
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// VLCUser is the system user cvlc runs as when the tests run as root (VLC refuses to
// run as root); scripts/install-tools.sh creates it.
const VLCUser = "peertest"

// vlcModules are the VLC modules a recording needs: RTMP through libavformat's AVIO, the
// HTTP input for HTTP-FLV and HLS, the FLV demuxer (avformat), the HLS demuxer (adaptive)
// and the MPEG-TS muxer (Debian's vlc-plugin-base).
var vlcModules = []string{"avio", "http", "avformat", "adaptive", "mux_ts"}

// RequireVLC fails the test under CI, and skips it elsewhere, when cvlc, one of the
// modules a recording needs or (when running as root) VLCUser is missing.
func RequireVLC(t testing.TB) {
	t.Helper()
	missing := func(what string, err error) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required under CI (scripts/install-tools.sh): %v", what, err)
		}
		t.Skipf("%s not installed (scripts/install-tools.sh): %v", what, err)
	}
	if _, err := exec.LookPath("cvlc"); err != nil {
		missing("cvlc", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd, err := vlcCommand(ctx, vlcDir(t), "--list")
	if err != nil {
		missing("user "+VLCUser, err)
	}
	list, err := cmd.Output()
	if err != nil {
		t.Fatalf("cvlc --list: %v", err)
	}
	have := map[string]bool{}
	for _, line := range strings.Split(string(list), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			have[f[0]] = true
		}
	}
	for _, m := range vlcModules {
		if !have[m] {
			missing("VLC module "+m, nil)
		}
	}
}

// vlcDir makes a directory, removed at the end of the test, that the VLC user can write.
func vlcDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vlc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// vlcCommand prepares cvlc with args, run as VLCUser when this process is root, with
// home (VLC's configuration and cache) in dir.
func vlcCommand(ctx context.Context, dir string, args ...string) (*exec.Cmd, error) {
	cmd := exec.CommandContext(ctx, "cvlc", args...)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	if os.Geteuid() != 0 {
		return cmd, nil
	}
	u, err := user.Lookup(VLCUser)
	if err != nil {
		return nil, err
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	return cmd, nil
}

// RecordVLC records url with cvlc into an MPEG-TS file for d of the input's time, then
// lets VLC quit, and returns the file. cvlc is killed (by its PID) when it runs 30 s
// past d or the test ends first. The file lives in a directory of its own that the
// VLC user can write, removed at the end of the test.
func RecordVLC(t testing.TB, url string, d time.Duration) string {
	t.Helper()
	dir := vlcDir(t)
	file := filepath.Join(dir, "rec.ts")
	cmd, err := vlcCommand(context.Background(), dir, "--no-interact", url, "--run-time", strconv.FormatFloat(d.Seconds(), 'f', 1, 64),
		"--sout", "#std{access=file,mux=ts,dst="+file+"}", "vlc://quit")
	if err != nil {
		t.Fatal(err)
	}
	p, err := startCmd(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	select {
	case <-p.Done():
	case <-time.After(d + 30*time.Second):
		p.Stop()
		t.Fatalf("cvlc %s did not quit:\n%s", url, p.Stderr)
	}
	if err := p.Err(); err != nil {
		t.Fatalf("cvlc %s: %v\n%s", url, err, p.Stderr)
	}
	if st, err := os.Stat(file); err != nil || st.Size() == 0 {
		t.Fatalf("cvlc recorded nothing from %s (%v):\n%s", url, err, p.Stderr)
	}
	t.Logf("cvlc %s: %s", url, strings.TrimSpace(p.Stderr.String()))
	return file
}
