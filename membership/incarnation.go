package membership

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// incarnationFile in a node's data directory holds the last incarnation it used.
const incarnationFile = "incarnation"

// NextIncarnation returns this start's incarnation for a node whose data directory is
// dir, and stores it there before returning. It is max(stored+1, wall clock in unix
// nanoseconds): the wall clock keeps it above what members remember of incarnations
// from before the counter existed, and the stored value keeps it growing when the clock
// has gone back since the last start (a node restarted with an earlier clock would
// otherwise stay dead to the others: an older incarnation loses).
func NextIncarnation(dir string) (int64, error) {
	p := filepath.Join(dir, incarnationFile)
	next := time.Now().UnixNano()
	b, err := os.ReadFile(p)
	switch {
	case err == nil:
		stored, perr := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if perr != nil || stored < 0 {
			return 0, fmt.Errorf("membership: %s: not an incarnation: %q", p, b)
		}
		next = max(next, stored+1)
	case !os.IsNotExist(err):
		return 0, fmt.Errorf("membership: %w", err)
	}
	if err := writeFileAtomic(p, []byte(strconv.FormatInt(next, 10)+"\n")); err != nil {
		return 0, fmt.Errorf("membership: store incarnation: %w", err)
	}
	return next, nil
}

// writeFileAtomic replaces p with data: a crash leaves the old or the new content.
func writeFileAtomic(p string, data []byte) error {
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}
