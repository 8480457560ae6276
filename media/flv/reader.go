package flv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// MaxTagData bounds a tag read from the network so a corrupt length cannot make us
// allocate without limit.
const MaxTagData = 16 << 20

// Reader reads an FLV stream (file header, then tags) with full reads; go-flv's decoder
// reads short on partial network reads, so this is our own.
type Reader struct {
	r      io.Reader
	hdr    [HeaderLen]byte
	header bool
	clock  Unwrapper
}

// NewReader reads FLV from r.
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

// ErrNotFLV is returned when the stream does not start with an FLV header.
var ErrNotFLV = errors.New("flv: not an FLV stream")

// Read returns the next tag. Time is unwrapped across the 32-bit timestamp wrap.
func (r *Reader) Read() (*Tag, error) {
	if !r.header {
		var fh [13]byte
		if _, err := io.ReadFull(r.r, fh[:]); err != nil {
			return nil, err
		}
		if fh[0] != 'F' || fh[1] != 'L' || fh[2] != 'V' {
			return nil, ErrNotFLV
		}
		skip := int64(binary.BigEndian.Uint32(fh[5:9])) - 9
		if skip > maxHeaderSkip {
			return nil, fmt.Errorf("flv: header of %d bytes", skip+9)
		}
		if skip > 0 {
			if _, err := io.CopyN(io.Discard, r.r, skip); err != nil {
				return nil, err
			}
		}
		r.header = true
	}
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		return nil, err
	}
	n := int(r.hdr[1])<<16 | int(r.hdr[2])<<8 | int(r.hdr[3])
	if n > MaxTagData {
		return nil, fmt.Errorf("flv: tag of %d bytes exceeds limit", n)
	}
	raw, err := r.readBody(HeaderLen + n + TrailerLen)
	if err != nil {
		return nil, err
	}
	ts := uint32(r.hdr[4])<<16 | uint32(r.hdr[5])<<8 | uint32(r.hdr[6]) | uint32(r.hdr[7])<<24
	return &Tag{Type: r.hdr[0] & 0x1f, Time: r.clock.Extend(ts), Raw: raw}, nil
}

// maxHeaderSkip bounds the bytes after the 9-byte file header that a reader skips (the
// spec has none; a DataOffset up to 4 GB would make us read that much junk).
const maxHeaderSkip = 1 << 10

// firstRead is the most a tag's body gets before its bytes arrive.
const firstRead = 64 << 10

// readBody reads the tag whose header is in r.hdr, size bytes in all. The buffer grows
// (doubling) as the bytes arrive, so a length field alone cannot make the reader
// allocate: memory follows what the peer actually sent.
func (r *Reader) readBody(size int) ([]byte, error) {
	raw := make([]byte, HeaderLen, min(size, firstRead))
	copy(raw, r.hdr[:])
	for len(raw) < size {
		if len(raw) == cap(raw) {
			raw = append(make([]byte, 0, min(2*cap(raw), size)), raw...)
		}
		n, err := io.ReadFull(r.r, raw[len(raw):cap(raw)])
		raw = raw[:len(raw)+n]
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the header came: the stream ended inside the tag
		}
		if err != nil {
			return nil, err
		}
	}
	return raw, nil
}

// Unwrapper extends 32-bit millisecond timestamps (RTMP, FLV) to 64 bits so stream
// time keeps growing past the 2^32 ms wrap (49.7 days) instead of jumping back.
type Unwrapper struct {
	epoch int64
	last  uint32
	seen  bool
}

// Extend returns the 64-bit time of ts. A backwards jump of more than half the range is
// a wrap; a forward jump of more than half the range is a late message from before the
// last wrap and keeps the previous epoch.
func (u *Unwrapper) Extend(ts uint32) int64 {
	if !u.seen {
		u.seen, u.last = true, ts
		return int64(ts)
	}
	switch {
	case ts < u.last && u.last-ts > 1<<31:
		u.epoch += 1 << 32
	case ts > u.last && ts-u.last > 1<<31:
		return u.epoch - 1<<32 + int64(ts)
	}
	u.last = ts
	return u.epoch + int64(ts)
}
