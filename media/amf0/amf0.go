// Package amf0 decodes and encodes AMF0, the value encoding of RTMP commands and data
// messages (Adobe's "Action Message Format AMF 0" specification).
//
// Every byte it decodes comes from the network, so the decoder is bounded: nesting
// deeper than MaxDepth, more than MaxValues values in one message, or a length past the
// end of the input is an error, and nothing is allocated that the input bytes do not
// justify (a count or length announced in the input is never used to preallocate).
// AMF3 (the avmplus-object marker and everything after it) and the legacy reference,
// movieclip, recordset, XML and typed-object markers are refused: no RTMP client peer
// serves sends them in AMF0 messages.
//
// It is a leaf: the standard library only.
package amf0

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Markers of the AMF0 types.
const (
	markerNumber      = 0x00
	markerBoolean     = 0x01
	markerString      = 0x02
	markerObject      = 0x03
	markerNull        = 0x05
	markerUndefined   = 0x06
	markerECMAArray   = 0x08
	markerObjectEnd   = 0x09
	markerStrictArray = 0x0a
	markerDate        = 0x0b
	markerLongString  = 0x0c
)

// Limits of one Decode call.
const (
	// MaxDepth is the deepest nesting of objects and arrays accepted. Real commands
	// and metadata nest two or three levels.
	MaxDepth = 32
	// MaxValues is the most values (object entries and array elements included) in one
	// decoded message; it bounds the decoded form's memory, which is larger per value
	// than the input (an onMetaData has a few dozen values).
	MaxValues = 16384
)

// Decoding errors; each is wrapped with the offset where it happened.
var (
	ErrTruncated   = errors.New("amf0: input ends inside a value")
	ErrDepth       = fmt.Errorf("amf0: nesting deeper than %d", MaxDepth)
	ErrTooMany     = fmt.Errorf("amf0: more than %d values", MaxValues)
	ErrUnsupported = errors.New("amf0: unsupported type marker")
)

// Entry is one key and value of an Object or ECMAArray.
type Entry struct {
	Key   string
	Value any
}

// Object is an anonymous AMF0 object; its entries keep their wire order.
type Object []Entry

// ECMAArray is an AMF0 associative array (onMetaData's usual form).
type ECMAArray []Entry

// StrictArray is an AMF0 dense array.
type StrictArray []any

// Undefined is the AMF0 undefined value (nil stands for null).
type Undefined struct{}

// Date is an AMF0 date: milliseconds since the Unix epoch and a time-zone field that
// the specification says to write as 0.
type Date struct {
	Millis float64
	TZ     int16
}

// Get returns the value of key.
func (o Object) Get(key string) (any, bool) {
	for _, e := range o {
		if e.Key == key {
			return e.Value, true
		}
	}
	return nil, false
}

// GetString returns the value of key if it is a string.
func (o Object) GetString(key string) (string, bool) {
	v, _ := o.Get(key)
	s, ok := v.(string)
	return s, ok
}

// GetFloat64 returns the value of key if it is a number.
func (o Object) GetFloat64(key string) (float64, bool) {
	v, _ := o.Get(key)
	f, ok := v.(float64)
	return f, ok
}

// AsObject returns v's entries when v is an Object or an ECMAArray, which carry the
// same thing (clients send connect's object and onMetaData as either).
func AsObject(v any) (Object, bool) {
	switch o := v.(type) {
	case Object:
		return o, true
	case ECMAArray:
		return Object(o), true
	}
	return nil, false
}

// Decode decodes the sequence of values that makes up a command or data message body.
// Values are float64, bool, string, nil (null), Undefined, Object, ECMAArray,
// StrictArray and Date.
func Decode(b []byte) ([]any, error) {
	d := decoder{b: b}
	var out []any
	for d.off < len(d.b) {
		v, err := d.value(0)
		if err != nil {
			return nil, fmt.Errorf("%w at byte %d", err, d.off)
		}
		out = append(out, v)
	}
	return out, nil
}

type decoder struct {
	b      []byte
	off    int
	values int
}

func (d *decoder) need(n int) ([]byte, error) {
	if n < 0 || n > len(d.b)-d.off {
		return nil, ErrTruncated
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p, nil
}

// value decodes one value at nesting depth depth. The recursion is bounded by MaxDepth,
// so no input can exhaust the stack.
func (d *decoder) value(depth int) (any, error) {
	if d.values++; d.values > MaxValues {
		return nil, ErrTooMany
	}
	m, err := d.need(1)
	if err != nil {
		return nil, err
	}
	switch m[0] {
	case markerNumber:
		p, err := d.need(8)
		if err != nil {
			return nil, err
		}
		return math.Float64frombits(binary.BigEndian.Uint64(p)), nil
	case markerBoolean:
		p, err := d.need(1)
		if err != nil {
			return nil, err
		}
		return p[0] != 0, nil
	case markerString:
		return d.str(2)
	case markerLongString:
		return d.str(4)
	case markerNull:
		return nil, nil
	case markerUndefined:
		return Undefined{}, nil
	case markerDate:
		p, err := d.need(10)
		if err != nil {
			return nil, err
		}
		return Date{Millis: math.Float64frombits(binary.BigEndian.Uint64(p)), TZ: int16(binary.BigEndian.Uint16(p[8:]))}, nil
	case markerObject, markerECMAArray, markerStrictArray:
		if depth >= MaxDepth {
			return nil, ErrDepth
		}
		switch m[0] {
		case markerObject:
			e, err := d.entries(depth + 1)
			return Object(e), err
		case markerECMAArray:
			// The count is only a hint (encoders get it wrong); the object-end marker
			// ends the array.
			if _, err := d.need(4); err != nil {
				return nil, err
			}
			e, err := d.entries(depth + 1)
			return ECMAArray(e), err
		default:
			return d.strictArray(depth + 1)
		}
	}
	return nil, fmt.Errorf("%w 0x%02x", ErrUnsupported, m[0])
}

// str reads a string with a lenBytes-byte length prefix.
func (d *decoder) str(lenBytes int) (string, error) {
	p, err := d.need(lenBytes)
	if err != nil {
		return "", err
	}
	n := int(binary.BigEndian.Uint16(p))
	if lenBytes == 4 {
		n = int(binary.BigEndian.Uint32(p) & math.MaxInt32)
	}
	if p, err = d.need(n); err != nil {
		return "", err
	}
	return string(p), nil
}

// entries reads key/value pairs up to the object-end marker (an empty key followed by
// 0x09).
func (d *decoder) entries(depth int) ([]Entry, error) {
	var out []Entry
	for {
		key, err := d.str(2)
		if err != nil {
			return nil, err
		}
		if key == "" && d.off < len(d.b) && d.b[d.off] == markerObjectEnd {
			d.off++
			return out, nil
		}
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		out = append(out, Entry{Key: key, Value: v})
	}
}

func (d *decoder) strictArray(depth int) (StrictArray, error) {
	p, err := d.need(4)
	if err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(p) & math.MaxInt32)
	if n > len(d.b)-d.off { // each element takes a byte at least
		return nil, ErrTruncated
	}
	var out StrictArray // grows with the elements decoded, not with n
	for range n {
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Encode encodes values as a message body; see Append.
func Encode(values ...any) ([]byte, error) { return Append(nil, values...) }

// Append appends the encoding of values to dst. It accepts what Decode returns, and
// int for convenience; other types, and nesting deeper than MaxDepth, are errors.
func Append(dst []byte, values ...any) ([]byte, error) {
	var err error
	for _, v := range values {
		if dst, err = appendValue(dst, v, 0); err != nil {
			return nil, err
		}
	}
	return dst, nil
}

func appendValue(dst []byte, v any, depth int) ([]byte, error) {
	switch v := v.(type) {
	case float64:
		return binary.BigEndian.AppendUint64(append(dst, markerNumber), math.Float64bits(v)), nil
	case int:
		return appendValue(dst, float64(v), depth)
	case bool:
		b := byte(0)
		if v {
			b = 1
		}
		return append(dst, markerBoolean, b), nil
	case string:
		if len(v) > math.MaxUint16 {
			dst = binary.BigEndian.AppendUint32(append(dst, markerLongString), uint32(len(v)))
			return append(dst, v...), nil
		}
		return appendKey(append(dst, markerString), v), nil
	case nil:
		return append(dst, markerNull), nil
	case Undefined:
		return append(dst, markerUndefined), nil
	case Date:
		dst = binary.BigEndian.AppendUint64(append(dst, markerDate), math.Float64bits(v.Millis))
		return binary.BigEndian.AppendUint16(dst, uint16(v.TZ)), nil
	}
	if depth >= MaxDepth {
		return nil, ErrDepth
	}
	switch v := v.(type) {
	case Object:
		return appendEntries(append(dst, markerObject), v, depth+1)
	case ECMAArray:
		dst = binary.BigEndian.AppendUint32(append(dst, markerECMAArray), uint32(len(v)))
		return appendEntries(dst, v, depth+1)
	case StrictArray:
		dst = binary.BigEndian.AppendUint32(append(dst, markerStrictArray), uint32(len(v)))
		var err error
		for _, e := range v {
			if dst, err = appendValue(dst, e, depth+1); err != nil {
				return nil, err
			}
		}
		return dst, nil
	}
	return nil, fmt.Errorf("amf0: cannot encode %T", v)
}

func appendKey(dst []byte, k string) []byte {
	return append(binary.BigEndian.AppendUint16(dst, uint16(len(k))), k...)
}

func appendEntries(dst []byte, entries []Entry, depth int) ([]byte, error) {
	var err error
	for _, e := range entries {
		if len(e.Key) > math.MaxUint16 {
			return nil, errors.New("amf0: object key longer than 65535 bytes")
		}
		if dst, err = appendValue(appendKey(dst, e.Key), e.Value, depth); err != nil {
			return nil, err
		}
	}
	return append(dst, 0, 0, markerObjectEnd), nil
}
