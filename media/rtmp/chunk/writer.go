package chunk

import "encoding/binary"

// appendBasic appends a basic header: format and chunk stream id (2..65599).
func appendBasic(dst []byte, format byte, csid uint32) []byte {
	switch {
	case csid < 64:
		return append(dst, format<<6|byte(csid))
	case csid < 320:
		return append(dst, format<<6, byte(csid-64))
	default:
		csid -= 64
		return append(dst, format<<6|1, byte(csid), byte(csid>>8))
	}
}

// AppendHeader appends the format 0 header that starts a message: the full timestamp
// (extended past 0xffffff), length, type and the message stream id, which RTMP puts
// little-endian (gortmplib writes it big-endian, which GStreamer's rtmp2 elements read
// as another stream).
func AppendHeader(dst []byte, csid, ts uint32, length int, typ uint8, msid uint32) []byte {
	dst = appendBasic(dst, 0, csid)
	field := min(ts, 0xffffff)
	dst = append(dst, byte(field>>16), byte(field>>8), byte(field), byte(length>>16), byte(length>>8), byte(length), typ)
	dst = binary.LittleEndian.AppendUint32(dst, msid)
	if ts >= 0xffffff {
		dst = binary.BigEndian.AppendUint32(dst, ts)
	}
	return dst
}

// AppendContinuation appends the format 3 header of a message's next chunk; it repeats
// an extended timestamp, as FMS, ffmpeg and librtmp expect.
func AppendContinuation(dst []byte, csid, ts uint32) []byte {
	dst = appendBasic(dst, 3, csid)
	if ts >= 0xffffff {
		dst = binary.BigEndian.AppendUint32(dst, ts)
	}
	return dst
}

// AppendMessage appends m as chunks of at most chunkSize bytes. It writes no header
// compression: every message starts with a format 0 header, so no state is kept
// between messages.
func AppendMessage(dst []byte, m *Message, chunkSize int) []byte {
	dst = AppendHeader(dst, m.ChunkStreamID, m.Timestamp, len(m.Body), m.Type, m.StreamID)
	for off := 0; off < len(m.Body); off += chunkSize {
		if off > 0 {
			dst = AppendContinuation(dst, m.ChunkStreamID, m.Timestamp)
		}
		dst = append(dst, m.Body[off:min(off+chunkSize, len(m.Body))]...)
	}
	return dst
}
