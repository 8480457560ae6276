package conf

import (
	"net/url"
	"os"
	"sync"

	"go.uber.org/zap"
)

// logFile is a log file that can be reopened at the same path, so that logrotate works
// both ways the seed's rules use: with `create` the old file is renamed and the node must
// reopen the path (on SIGHUP or SIGUSR1, as SRS does), and with `copytruncate` the file
// is truncated under it, which O_APPEND writes survive without a hole.
type logFile struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

func (l *logFile) open() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	l.f = f
	return nil
}

func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

func (l *logFile) Sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Sync()
}

func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// reopen switches to a fresh open of the path; lines written meanwhile went to the old
// file (renamed by logrotate), none is lost.
func (l *logFile) reopen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.f
	if err := l.open(); err != nil {
		l.f = old
		return err
	}
	return old.Close()
}

const logScheme = "peerlog"

var logFiles = struct {
	sync.Mutex
	open []*logFile
}{}

func init() {
	err := zap.RegisterSink(logScheme, func(u *url.URL) (zap.Sink, error) {
		l := &logFile{path: u.Path}
		if err := l.open(); err != nil {
			return nil, err
		}
		logFiles.Lock()
		logFiles.open = append(logFiles.open, l)
		logFiles.Unlock()
		return l, nil
	})
	if err != nil {
		panic(err)
	}
}

// ReopenLogs reopens every log file at its path (after logrotate moved it).
func ReopenLogs() error {
	logFiles.Lock()
	defer logFiles.Unlock()
	for _, l := range logFiles.open {
		if err := l.reopen(); err != nil {
			return err
		}
	}
	return nil
}

func logURL(path string) string {
	return (&url.URL{Scheme: logScheme, Path: path}).String()
}
