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
	// The temporary file goes beside its target (the playlist is "../name.m3u8", outside
	// the segments' directory), so the rename stays within one directory.
	path := filepath.Join(m.cfg.Dir, name)
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err == nil {
		_, err = f.Write(data)
		if err == nil {
			err = f.Chmod(0o644) // CreateTemp makes 0600; a web server may run as another user
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(f.Name(), path)
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
