package hls

import (
	"os"
	"path/filepath"

	"go.uber.org/zap"
)

// makeDir creates Dir when the first segment is written to it, not in New: a stream
// leaves no directory behind.
func (m *Muxer) makeDir() {
	m.dirOnce.Do(func() {
		if err := os.MkdirAll(m.cfg.Dir, 0o755); err != nil {
			m.log.Warn("hls: cannot create segment directory", zap.String("dir", m.cfg.Dir), zap.Error(err))
		}
	})
}

// writeFile replaces a file in Dir atomically so HTTP servers never see half of it.
func (m *Muxer) writeFile(name string, data []byte) {
	f, err := os.CreateTemp(m.cfg.Dir, "."+name+".*")
	if err == nil {
		_, err = f.Write(data)
		if err == nil {
			err = f.Chmod(0o644) // CreateTemp makes 0600; a web server may run as another user
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(f.Name(), filepath.Join(m.cfg.Dir, name))
		}
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}
	if err != nil {
		m.log.Warn("hls: write failed", zap.String("file", name), zap.Error(err))
	}
}

func (m *Muxer) removeFile(name string) {
	if err := os.Remove(filepath.Join(m.cfg.Dir, name)); err != nil && !os.IsNotExist(err) {
		m.log.Warn("hls: remove failed", zap.String("file", name), zap.Error(err))
	}
}
