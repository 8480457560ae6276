package placement

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
)

// RequestAs sends one control request to the raft port at addr as a process named name
// that holds clusterKey but not a member's identity key: what a holder of the key that
// is not a member, or that impersonates one, can do. It returns the response's code
// ("" when the request was carried out, "refused", "not_leader", ...). The attack tests
// use it; nodes never do.
func RequestAs(ctx context.Context, clusterKey, name, addr, op, stream, node string, epoch uint64) (string, error) {
	ca, err := deriveCA(clusterKey)
	if err != nil {
		return "", err
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	cert, err := ca.issue(name, key)
	if err != nil {
		return "", err
	}
	_, cfg := ca.tlsConfigs(cert)
	cfg.NextProtos = []string{alpnRPC}
	d := tls.Dialer{Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := json.NewEncoder(conn).Encode(rpcReq{Op: op, Stream: stream, Node: node, Epoch: epoch}); err != nil {
		return "", err
	}
	line, err := readLine(bufio.NewReader(conn), maxResponse)
	if err != nil {
		return "", err
	}
	var resp rpcResp
	if err := json.Unmarshal(line, &resp); err != nil {
		return "", err
	}
	return resp.Code, nil
}
