// Package handshake does RTMP's connection handshake, server and client side.
//
// The specification's handshake (C1/S1 of time, zeros and random bytes; C2/S2 echo the
// other side's packet) is what simple clients do. Flash-era clients (ffmpeg, librtmp in
// its Flash Player 9 mode, OBS) put an HMAC-SHA256 digest into C1 and check that S1 and
// S2 carry the server's digests; librtmp's plain mode checks that S2 echoes C1 byte for
// byte ("client signature does not match!" otherwise). The server answers each client
// in its own scheme. The digest sits at an offset derived from four bytes of the packet,
// in one of two layouts ("schemas"): after the 8-byte time/version header, or after a
// 764-byte key block.
//
// It is a leaf: the standard library only.
package handshake

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Size is the length of C1, C2, S1 and S2.
const Size = 1536

const (
	version    = 3 // C0/S0: plain RTMP; 6 and 8 ask for RTMPE
	digestLen  = sha256.Size
	serverVer  = 0x04050001 // S1's version field: FMS 4.5, which digest clients expect
	clientVer  = 0x80000702 // C1's version field: Flash Player 9, as ffmpeg sends
	offsetSpan = 728        // the digest offset is a byte sum modulo this
)

// The keys are public: they identify "genuine" Adobe software. A digest's key is the
// first 30 or 36 bytes; S2 and C2 are signed with keys derived from the full ones.
var (
	fpKey  = append([]byte("Genuine Adobe Flash Player 001"), tail...)
	fmsKey = append([]byte("Genuine Adobe Flash Media Server 001"), tail...)
	tail   = []byte{
		0xf0, 0xee, 0xc2, 0x4a, 0x80, 0x68, 0xbe, 0xe8, 0x2e, 0x00, 0xd0, 0xd1, 0x02, 0x9e, 0x7e, 0x57,
		0x6e, 0xec, 0x5d, 0x2d, 0x29, 0x80, 0x6f, 0xab, 0x93, 0xb8, 0xe6, 0x36, 0xcf, 0xeb, 0x31, 0xae,
	}
	fpKeyShort  = fpKey[:30]
	fmsKeyShort = fmsKey[:36]
)

// Errors of a handshake that cannot go on.
var (
	ErrEncrypted = errors.New("rtmp handshake: encrypted RTMP (RTMPE) is not supported")
	ErrVersion   = errors.New("rtmp handshake: unknown version")
	ErrDigest    = errors.New("rtmp handshake: server digest does not verify")
)

// schema is where a packet's digest is: base is the first of the four bytes summed for
// the offset.
type schema int

const (
	digestFirst schema = 8   // librtmp's and the Flash Player's usual layout
	keyFirst    schema = 772 // ffmpeg tries this one first
)

// digestOffset is where the 32 digest bytes of p start under s.
func digestOffset(p []byte, s schema) int {
	b := int(s)
	sum := int(p[b]) + int(p[b+1]) + int(p[b+2]) + int(p[b+3])
	return b + 4 + sum%offsetSpan
}

// digestAt is the HMAC over p without the 32 bytes at off.
func digestAt(p []byte, off int, key []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(p[:off])
	h.Write(p[off+digestLen:])
	return h.Sum(nil)
}

// findDigest returns the offset of a valid digest in p made with key, trying both
// schemas.
func findDigest(p, key []byte) (int, bool) {
	for _, s := range []schema{digestFirst, keyFirst} {
		off := digestOffset(p, s)
		if hmac.Equal(p[off:off+digestLen], digestAt(p, off, key)) {
			return off, true
		}
	}
	return 0, false
}

// sign writes a digest into p under schema s and returns its offset.
func sign(p []byte, s schema, key []byte) int {
	off := digestOffset(p, s)
	copy(p[off:], digestAt(p, off, key))
	return off
}

// signTail fills the last 32 bytes of a C2/S2 with the HMAC of the rest, keyed with the
// HMAC of the other side's digest under key.
func signTail(p, peerDigest, key []byte) {
	h := hmac.New(sha256.New, key)
	h.Write(peerDigest)
	h = hmac.New(sha256.New, h.Sum(nil))
	h.Write(p[:Size-digestLen])
	copy(p[Size-digestLen:], h.Sum(nil))
}

func randomPacket(ver uint32) []byte {
	p := make([]byte, Size)
	rand.Read(p[8:])
	binary.BigEndian.PutUint32(p[4:], ver)
	return p
}

// Server does the server side on rw: it reads C0 and C1, answers S0, S1 and S2 in the
// client's scheme, and reads C2 (not checked: clients sign it inconsistently).
func Server(rw io.ReadWriter) error {
	c0c1 := make([]byte, 1+Size)
	if _, err := io.ReadFull(rw, c0c1); err != nil {
		return err
	}
	switch c0c1[0] {
	case version:
	case 6, 8:
		return ErrEncrypted
	default:
		return fmt.Errorf("%w %d", ErrVersion, c0c1[0])
	}
	c1 := c0c1[1:]
	out := make([]byte, 1+2*Size)
	out[0] = version
	s1, s2 := out[1:1+Size], out[1+Size:]
	if off, ok := findDigest(c1, fpKeyShort); ok {
		copy(s1, randomPacket(serverVer))
		s := digestFirst
		if off >= int(keyFirst) {
			s = keyFirst
		}
		sign(s1, s, fmsKeyShort) // in the client's schema: librtmp looks only there
		rand.Read(s2)
		signTail(s2, c1[off:off+digestLen], fmsKey)
	} else {
		copy(s1, randomPacket(0))
		copy(s2, c1) // the echo librtmp compares byte for byte
	}
	if _, err := rw.Write(out); err != nil {
		return err
	}
	_, err := io.ReadFull(rw, c0c1[:Size])
	return err
}

// Client does the client side on rw with a digest C1, as ffmpeg does: a server that
// answers with its own digest must sign S1 and S2 correctly; a plain server's S2 is
// taken as it comes.
func Client(rw io.ReadWriter) error {
	out := make([]byte, 1+Size)
	out[0] = version
	c1 := out[1:]
	copy(c1, randomPacket(clientVer))
	off := sign(c1, digestFirst, fpKeyShort)
	if _, err := rw.Write(out); err != nil {
		return err
	}
	in := make([]byte, 1+2*Size)
	if _, err := io.ReadFull(rw, in); err != nil {
		return err
	}
	if in[0] != version {
		return fmt.Errorf("%w %d", ErrVersion, in[0])
	}
	s1, s2 := in[1:1+Size], in[1+Size:]
	c2 := make([]byte, Size)
	if binary.BigEndian.Uint32(s1[4:]) == 0 {
		copy(c2, s1) // plain server: echo S1
	} else {
		soff, ok := findDigest(s1, fmsKeyShort)
		if !ok {
			return ErrDigest
		}
		want := bytes.Clone(s2)
		signTail(want, c1[off:off+digestLen], fmsKey)
		if !hmac.Equal(want, s2) {
			return fmt.Errorf("%w (S2)", ErrDigest)
		}
		rand.Read(c2)
		signTail(c2, s1[soff:soff+digestLen], fpKey)
	}
	_, err := rw.Write(c2)
	return err
}
