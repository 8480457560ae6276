package handshake

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
)

// pair runs Server on one end of a pipe and client on the other.
func pair(t *testing.T, client func(net.Conn) error) error {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	done := make(chan error, 1)
	go func() { done <- Server(a) }()
	if err := client(b); err != nil {
		t.Fatalf("client: %v", err)
	}
	return <-done
}

// TestDigestHandshake: our client sends a digest C1 and verifies the server's S1 and S2
// digests, as ffmpeg and librtmp's Flash Player 9 mode do.
func TestDigestHandshake(t *testing.T) {
	if err := pair(t, func(c net.Conn) error { return Client(c) }); err != nil {
		t.Fatalf("server: %v", err)
	}
}

// TestDigestSchemas: the server finds a client digest in either layout and signs S1 in
// the same one.
func TestDigestSchemas(t *testing.T) {
	for _, s := range []schema{digestFirst, keyFirst} {
		err := pair(t, func(c net.Conn) error {
			c1 := randomPacket(clientVer)
			off := sign(c1, s, fpKeyShort)
			c.Write(append([]byte{version}, c1...))
			in := make([]byte, 1+2*Size)
			if _, err := io.ReadFull(c, in); err != nil {
				return err
			}
			s1, s2 := in[1:1+Size], in[1+Size:]
			soff := digestOffset(s1, s)
			if !bytes.Equal(s1[soff:soff+digestLen], digestAt(s1, soff, fmsKeyShort)) {
				t.Errorf("schema %d: S1 digest not in the client's schema", s)
			}
			want := bytes.Clone(s2)
			signTail(want, c1[off:off+digestLen], fmsKey)
			if !bytes.Equal(want, s2) {
				t.Errorf("schema %d: S2 not signed with the client's digest", s)
			}
			_, err := c.Write(make([]byte, Size))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestPlainHandshake: a client without a digest (librtmp's plain mode) gets S2 equal to
// its C1, and our client accepts a plain server.
func TestPlainHandshake(t *testing.T) {
	err := pair(t, func(c net.Conn) error {
		c1 := randomPacket(0)
		c.Write(append([]byte{version}, c1...))
		in := make([]byte, 1+2*Size)
		if _, err := io.ReadFull(c, in); err != nil {
			return err
		}
		if binary.BigEndian.Uint32(in[5:]) != 0 {
			t.Errorf("S1 version %x for a plain client", in[5:9])
		}
		if !bytes.Equal(in[1+Size:], c1) {
			t.Error("S2 does not echo C1")
		}
		_, err := c.Write(in[1 : 1+Size])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() { // a plain server
		in := make([]byte, 1+Size)
		io.ReadFull(a, in)
		a.Write(append(append([]byte{version}, make([]byte, Size)...), in[1:]...))
		io.ReadFull(a, in[:Size])
	}()
	if err := Client(b); err != nil {
		t.Fatalf("client against a plain server: %v", err)
	}
}

func TestServerRefusals(t *testing.T) {
	for c0, want := range map[byte]error{6: ErrEncrypted, 8: ErrEncrypted, 31: ErrVersion} {
		in := append([]byte{c0}, make([]byte, Size)...)
		err := Server(&rw{r: bytes.NewReader(in)})
		if !errors.Is(err, want) {
			t.Errorf("C0 %d: %v", c0, err)
		}
	}
}

// TestClientRefusesBadDigest: a server whose S1 claims a version but carries no valid
// digest is refused.
func TestClientRefusesBadDigest(t *testing.T) {
	s := append([]byte{version}, randomPacket(serverVer)...)
	s = append(s, make([]byte, Size)...)
	if err := Client(&rw{r: bytes.NewReader(s)}); !errors.Is(err, ErrDigest) {
		t.Fatalf("%v", err)
	}
}

type rw struct {
	r   io.Reader
	out bytes.Buffer
}

func (x *rw) Read(p []byte) (int, error)  { return x.r.Read(p) }
func (x *rw) Write(p []byte) (int, error) { return x.out.Write(p) }

// FuzzServer feeds arbitrary C0, C1 and C2 to the server: it answers or fails, and an
// answer is always S0, S1 and S2.
func FuzzServer(f *testing.F) {
	c1 := randomPacket(clientVer)
	sign(c1, digestFirst, fpKeyShort)
	f.Add(append(append([]byte{version}, c1...), make([]byte, Size)...))
	f.Add(append([]byte{version}, make([]byte, 2*Size)...))
	f.Add([]byte{6, 1, 2})
	f.Fuzz(func(t *testing.T, in []byte) {
		x := &rw{r: bytes.NewReader(in)}
		err := Server(x)
		if x.out.Len() != 0 && x.out.Len() != 1+2*Size {
			t.Fatalf("answered %d bytes", x.out.Len())
		}
		if err == nil && len(in) < 1+2*Size {
			t.Fatalf("accepted %d bytes", len(in))
		}
	})
}
