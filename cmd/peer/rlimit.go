package main

import (
	"syscall"

	"go.uber.org/zap"
)

// raiseFileLimit lifts the process's open-file soft limit to its hard limit (Go's os
// package does that too since 1.19; doing it here makes it explicit and logged) and
// warns when even the hard limit is too low for maxConnections sessions: every
// session, idle HTTP connection, cluster link and HLS file takes a descriptor, and a
// node out of descriptors refuses everyone, operators included. Under about twice
// max_connections an idle-connection flood can get there.
func raiseFileLimit(log *zap.Logger, maxConnections int) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("cannot read the open-file limit", zap.Error(err))
		return
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = raised.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			log.Warn("cannot raise the open-file limit", zap.Uint64("soft", lim.Cur), zap.Uint64("hard", lim.Max), zap.Error(err))
		} else {
			lim = raised
		}
	}
	if want := fileLimitWanted(maxConnections); lim.Cur < want {
		log.Warn("open-file limit is low for max_connections: raise the hard limit (ulimit -Hn, LimitNOFILE= in systemd)",
			zap.Uint64("limit", lim.Cur), zap.Uint64("wanted", want), zap.Int("max_connections", maxConnections))
		return
	}
	log.Info("open-file limit", zap.Uint64("limit", lim.Cur))
}

// fileLimitWanted is the descriptor count a node with maxConnections sessions should
// be allowed: twice the sessions (idle and half-open connections come on top of them)
// plus a margin for listeners, cluster links, Raft and HLS files.
func fileLimitWanted(maxConnections int) uint64 {
	return 2*uint64(max(maxConnections, 0)) + 1024
}
