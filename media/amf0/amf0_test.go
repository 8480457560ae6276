package amf0

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

// nested returns an object nested depth levels deep.
func nested(depth int) []byte {
	var b []byte
	for range depth {
		b = append(b, markerObject, 0, 1, 'a')
	}
	b = append(b, markerNull)
	for range depth {
		b = append(b, 0, 0, markerObjectEnd)
	}
	return b
}

func TestDecodeCommand(t *testing.T) {
	body, err := Encode("connect", 1.0, Object{{Key: "app", Value: "live"}, {Key: "tcUrl", Value: "rtmp://h/live"}},
		nil, Undefined{}, true, ECMAArray{{Key: "width", Value: 320.0}}, StrictArray{1.0, "x"}, Date{Millis: 5, TZ: 0})
	if err != nil {
		t.Fatal(err)
	}
	v, err := Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 9 || v[0] != "connect" || v[1] != 1.0 || v[3] != nil || v[4] != (Undefined{}) || v[5] != true {
		t.Fatalf("decoded %#v", v)
	}
	obj, ok := AsObject(v[2])
	if app, _ := obj.GetString("app"); !ok || app != "live" {
		t.Fatalf("app %q", app)
	}
	meta, ok := AsObject(v[6])
	if w, _ := meta.GetFloat64("width"); !ok || w != 320 {
		t.Fatalf("width %v", w)
	}
	if a, ok := v[7].(StrictArray); !ok || len(a) != 2 || a[1] != "x" {
		t.Fatalf("strict array %#v", v[7])
	}
}

func TestDecodeLongString(t *testing.T) {
	s := string(bytes.Repeat([]byte("x"), 70000))
	b, err := Encode(s)
	if err != nil || b[0] != markerLongString {
		t.Fatalf("%v %x", err, b[:1])
	}
	v, err := Decode(b)
	if err != nil || v[0] != s {
		t.Fatalf("long string: %v", err)
	}
}

// TestDecodeDepth: the nesting that overflowed gortmplib's stack is an error here, and
// the deepest accepted nesting decodes.
func TestDecodeDepth(t *testing.T) {
	if _, err := Decode(nested(MaxDepth)); err != nil {
		t.Fatalf("depth %d: %v", MaxDepth, err)
	}
	for _, depth := range []int{MaxDepth + 1, 2_000_000} {
		if _, err := Decode(nested(depth)); !errors.Is(err, ErrDepth) {
			t.Fatalf("depth %d: %v", depth, err)
		}
	}
	deep := StrictArray{nil}
	for range MaxDepth {
		deep = StrictArray{deep}
	}
	if _, err := Encode(deep); !errors.Is(err, ErrDepth) {
		t.Fatalf("encoding too deep: %v", err)
	}
}

func TestDecodeRefusals(t *testing.T) {
	many := bytes.Repeat([]byte{markerNull}, MaxValues+1)
	cases := map[string]struct {
		in   []byte
		want error
	}{
		"truncated number":           {[]byte{markerNumber, 1, 2}, ErrTruncated},
		"string past the end":        {[]byte{markerString, 0xff, 0xff, 'a'}, ErrTruncated},
		"long string past the end":   {[]byte{markerLongString, 0x7f, 0xff, 0xff, 0xff}, ErrTruncated},
		"strict array count too big": {[]byte{markerStrictArray, 0x7f, 0xff, 0xff, 0xff, markerNull}, ErrTruncated},
		"object without end":         {[]byte{markerObject, 0, 1, 'a', markerNull}, ErrTruncated},
		"AMF3 switch":                {[]byte{0x11, 0x01}, ErrUnsupported},
		"reference":                  {[]byte{0x07, 0, 1}, ErrUnsupported},
		"stray object end":           {[]byte{markerObjectEnd}, ErrUnsupported},
		"too many values":            {many, ErrTooMany},
	}
	for name, c := range cases {
		if _, err := Decode(c.in); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

// TestDecodeAllocation: what a message decodes to stays proportional to its size; an
// announced count or length never allocates by itself.
func TestDecodeAllocation(t *testing.T) {
	in := []byte{markerECMAArray, 0x7f, 0xff, 0xff, 0xff, 0, 0, markerObjectEnd}
	allocs := testing.AllocsPerRun(100, func() { Decode(in) })
	if allocs > 3 {
		t.Fatalf("%v allocations for an empty ECMA array announcing 2^31 entries", allocs)
	}
}

// equal compares decoded values, NaN numbers by their bits.
func equal(a, b any) bool {
	switch a := a.(type) {
	case float64:
		b, ok := b.(float64)
		return ok && math.Float64bits(a) == math.Float64bits(b)
	case Date:
		b, ok := b.(Date)
		return ok && math.Float64bits(a.Millis) == math.Float64bits(b.Millis) && a.TZ == b.TZ
	case Object:
		b, ok := b.(Object)
		return ok && entriesEqual(a, b)
	case ECMAArray:
		b, ok := b.(ECMAArray)
		return ok && entriesEqual(a, b)
	case StrictArray:
		b, ok := b.(StrictArray)
		return ok && valuesEqual(a, b)
	}
	return a == b
}

func entriesEqual(a, b []Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || !equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

func valuesEqual(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// FuzzDecode decodes arbitrary input within its bounds; whatever decodes must encode
// and decode back to the same values. The corpus holds ffmpeg's publish commands and
// its onMetaData, captured from a publish to peer.
func FuzzDecode(f *testing.F) {
	for _, v := range [][]any{
		{"play", 4.0, nil, "legit", -2000.0},
		{"getStreamLength", 3.0, nil, "legit"},
		{"FCSubscribe", 5.0, nil, "legit"},
		{"onStatus", 0.0, nil, Object{{Key: "level", Value: "status"}, {Key: "code", Value: "NetStream.Play.Start"}}},
		{"|RtmpSampleAccess", true, true},
	} {
		b, err := Encode(v...)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(nested(MaxDepth + 1))
	f.Fuzz(func(t *testing.T, in []byte) {
		v, err := Decode(in)
		if err != nil {
			return
		}
		out, err := Encode(v...)
		if err != nil {
			t.Fatalf("decoded values do not encode: %v", err)
		}
		back, err := Decode(out)
		if err != nil {
			t.Fatalf("re-encoded values do not decode: %v", err)
		}
		if !valuesEqual(v, back) {
			t.Fatalf("round trip changed the values:\n%#v\n%#v", v, back)
		}
	})
}
