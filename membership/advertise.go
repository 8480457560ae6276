package membership

import "net"

// Advertise is the address a node announces for a listener, so that other nodes can
// reach it when it listens on 0.0.0.0 or [::]. Each of addrs is host:port, a bare host
// or empty, most preferred first: an operator's advertise setting, then the listener's
// own address, then fallbacks. The host is the first specific one (neither empty nor
// 0.0.0.0 nor ::), 127.0.0.1 if there is none; the port is the first that is neither
// empty nor 0, else 0.
func Advertise(addrs ...string) string {
	host, port := "", ""
	for _, a := range addrs {
		h, p, err := net.SplitHostPort(a)
		if err != nil {
			h, p = a, ""
		}
		if host == "" && h != "" {
			if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
				host = h
			}
		}
		if port == "" && p != "" && p != "0" {
			port = p
		}
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if port == "" {
		port = "0"
	}
	return net.JoinHostPort(host, port)
}
