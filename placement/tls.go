package placement

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"peer/membership"
)

// Every connection on the raft port is TLS 1.3 with both sides authenticated by a
// certificate chain to a CA derived from the cluster key:
//
//   - the CA's Ed25519 key is HKDF-SHA256(cluster key, "peer cluster CA"), so every node
//     derives the same CA and nobody without the key can issue a certificate under it;
//   - each node's certificate is issued at start by that CA for its persistent identity
//     key (DataDir/node-key) with the node's name as common name.
//
// TLS then authenticates and encrypts every message of the connection and refuses
// replayed or injected records, which a one-time challenge at connect time does not.
// The application protocol (ALPN) says whether the connection carries raft or the
// control RPC. The certificate gives the RPC handler its caller: a name and the
// fingerprint of a key, which the leader checks against the member of that name.
//
// A keyless cluster (loopback only) derives its CA from the empty key: the same code
// runs, but anyone on the host can derive that CA too.
const (
	alpnRaft = "peer-raft"
	alpnRPC  = "peer-rpc"
)

// caller is the authenticated other end of a raft-port connection.
type caller struct {
	name string // common name of its certificate
	key  string // fingerprint of its public key (keyFingerprint)
}

// clusterCA is the certificate authority every node of a cluster derives from its key.
type clusterCA struct {
	key  ed25519.PrivateKey
	cert *x509.Certificate
	pool *x509.CertPool
}

func deriveCA(clusterKey string) (*clusterCA, error) {
	seed, err := hkdf.Key(sha256.New, []byte(clusterKey), []byte("peer-transport"), "peer cluster CA", ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	key := ed25519.NewKeyFromSeed(seed)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "peer cluster CA"},
		NotBefore:             time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &clusterCA{key: key, cert: cert, pool: pool}, nil
}

// issue makes the certificate of node name for its identity key.
func (ca *clusterCA) issue(name string, key ed25519.PrivateKey) (tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    now.Add(-time.Hour), // tolerate clocks a little behind ours
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// verify checks that a peer's certificate was issued by the cluster CA.
func (ca *clusterCA) verify(rawCerts [][]byte) (caller, error) {
	if len(rawCerts) == 0 {
		return caller{}, errors.New("no certificate")
	}
	cert, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return caller{}, err
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return caller{}, err
	}
	return callerOf(cert)
}

// callerOf reads the identity in a verified node certificate.
func callerOf(cert *x509.Certificate) (caller, error) {
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok || cert.Subject.CommonName == "" {
		return caller{}, errors.New("not a node certificate")
	}
	return caller{name: cert.Subject.CommonName, key: keyFingerprint(pub)}, nil
}

// tlsConfigs returns the server and client configurations of a node.
func (ca *clusterCA) tlsConfigs(cert tls.Certificate) (server, client *tls.Config) {
	check := func(raw [][]byte, _ [][]*x509.Certificate) error { _, err := ca.verify(raw); return err }
	server = &tls.Config{
		MinVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{cert},
		ClientAuth:             tls.RequireAnyClientCert,
		VerifyPeerCertificate:  check,
		NextProtos:             []string{alpnRaft, alpnRPC},
		SessionTicketsDisabled: true,
	}
	client = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		// The chain is checked by check, against the cluster CA; nodes have no DNS names.
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: check,
	}
	return server, client
}

// keyFingerprint names a node's identity key: 16 bytes of its SHA-256, in hex.
func keyFingerprint(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:16])
}

// loadNodeKey returns the node's identity key, kept in DataDir/node-key (0600) so that a
// node restarted on its data dir is recognised as itself; dir "" gives a key for this
// run only (in-memory test clusters).
func loadNodeKey(dir string) (ed25519.PrivateKey, error) {
	if dir == "" {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	p := filepath.Join(dir, "node-key")
	b, err := os.ReadFile(p)
	if err == nil {
		seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("placement: %s is not a node key", p)
		}
		return ed25519.NewKeyFromSeed(seed), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(p, []byte(hex.EncodeToString(k.Seed())+"\n"), 0o600); err != nil {
		return nil, err
	}
	return k, nil
}

// loadCertificate loads (or creates) this node's identity key and has the cluster CA,
// derived from the cluster key, issue the node's certificate for the raft port.
func (c *Cluster) loadCertificate() (server, client *tls.Config, err error) {
	key, err := loadNodeKey(c.cfg.DataDir)
	if err != nil {
		return nil, nil, fmt.Errorf("placement: node key: %w", err)
	}
	ca, err := deriveCA(c.cfg.ClusterKey)
	if err != nil {
		return nil, nil, fmt.Errorf("placement: cluster CA: %w", err)
	}
	cert, err := ca.issue(c.name, key)
	if err != nil {
		return nil, nil, fmt.Errorf("placement: node certificate: %w", err)
	}
	c.keyID = keyFingerprint(key.Public().(ed25519.PublicKey))
	server, client = ca.tlsConfigs(cert)
	return server, client, nil
}

// trusted tells membership whether the node gossiping as name with identity key may
// hold that name: a name belongs to the identity key the replicated member table
// recorded for it while that holder lives (a node restarted on its data dir keeps its
// key). A record of a dead or departed holder can be taken over by a new identity.
func (c *Cluster) trusted(name, key string) bool {
	rec, ok := c.fsm.member(name)
	if !ok || rec.Key == "" || rec.Key == key {
		return true
	}
	return rec.State == string(membership.StateDead) || rec.State == string(membership.StateLeft)
}
