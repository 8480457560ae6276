package flv

import (
	"bytes"
	"testing"

	"peer/media/internal/allocs"
)

// FuzzReader reads an FLV stream from the network (an HTTP-FLV pull, a file): no panic,
// time only grows within the unwrapper's rules, and memory follows the input.
func FuzzReader(f *testing.F) {
	f.Add(append(append([]byte{}, FileHeader...), NewTag(TypeVideo, 40, []byte{0x17, 1, 0, 0, 0}).Raw...))
	f.Add([]byte("FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00\x09\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("FLV\x01\x05\xff\xff\xff\xff\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n := allocs.Of(func() {
			r := NewReader(bytes.NewReader(data))
			for range 1000 {
				tag, err := r.Read()
				if err != nil {
					return
				}
				if len(tag.Raw) != HeaderLen+tag.Size()+TrailerLen || tag.Size() > MaxTagData {
					t.Fatalf("tag of %d raw bytes, size %d", len(tag.Raw), tag.Size())
				}
				tag.IsKeyframe()
				tag.IsSequenceHeader()
				tag.CompositionTime()
				tag.Payload()
			}
		})
		if n > allocs.Bound(len(data)) {
			t.Fatalf("%d bytes of input allocated %d", len(data), n)
		}
	})
}

// FuzzTag builds a tag from a message body (what a publisher sends) and reads it back
// through every accessor.
func FuzzTag(f *testing.F) {
	f.Add(uint8(TypeVideo), int64(0), []byte{0x17, 0, 0, 0, 0, 1, 0x64})
	f.Add(uint8(TypeAudio), int64(1<<32+5), []byte{0xaf, 1, 0x21})
	f.Add(uint8(TypeVideo), int64(-1), []byte{0x27})
	f.Add(uint8(TypeScript), int64(7), []byte{})
	f.Fuzz(func(t *testing.T, typ uint8, ms int64, data []byte) {
		tag := NewTag(typ, ms, data)
		if !bytes.Equal(tag.Data(), data) || tag.Size() != len(data) {
			t.Fatal("data does not round-trip")
		}
		if p := tag.Payload(); len(p) > len(data) {
			t.Fatal("payload longer than the data")
		}
		tag.IsKeyframe()
		tag.IsSequenceHeader()
		tag.CompositionTime()
		tag.VideoCodec()
		tag.AudioCodec()
		r := NewReader(bytes.NewReader(append(append([]byte{}, FileHeader...), tag.Raw...)))
		back, err := r.Read()
		if typ&0x1f == typ && len(data) <= MaxTagData && (err != nil || !bytes.Equal(back.Raw, tag.Raw)) {
			t.Fatalf("a serialized tag does not read back: %v", err)
		}
	})
}

// FuzzUnwrapper: extended time never moves by more than half the 32-bit range from the
// previous one, whatever the sequence.
func FuzzUnwrapper(f *testing.F) {
	f.Add([]byte{0xff, 0xff, 0xff, 0x00, 0, 0, 0, 0x10, 0x7f, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		var u Unwrapper
		var prev int64
		for i := 0; i+4 <= len(data); i += 4 {
			ts := uint32(data[i])<<24 | uint32(data[i+1])<<16 | uint32(data[i+2])<<8 | uint32(data[i+3])
			got := u.Extend(ts)
			if uint32(got) != ts {
				t.Fatalf("Extend(%#x) = %#x: low bits lost", ts, got)
			}
			if i > 0 && (got-prev > 1<<32 || prev-got > 1<<32) {
				t.Fatalf("Extend(%#x) = %d after %d", ts, got, prev)
			}
			prev = got
		}
	})
}
