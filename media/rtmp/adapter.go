package rtmp

import (
	"peer/media/flv"
	"peer/media/ingest"
	"peer/media/rtmp/chunk"
)

// MediaTag is RTMP's ingest adapter: the tag an audio, video or data message carries,
// and false for any other message (commands, control) and for an empty AMF3 data
// message. AMF3 data (type 15) is AMF0 data behind a format byte, so it becomes script
// data without it. The tag's Data is msg's Body: valid as long as msg's.
func MediaTag(msg *chunk.Message) (ingest.Tag, bool) {
	typ, body := msg.Type, msg.Body
	switch typ {
	case flv.TypeAudio, flv.TypeVideo, TypeDataAMF0:
	case TypeDataAMF3:
		if len(body) == 0 {
			return ingest.Tag{}, false
		}
		typ, body = TypeDataAMF0, body[1:]
	default:
		return ingest.Tag{}, false
	}
	return ingest.Tag{Type: typ, Time: msg.Timestamp, Data: body}, true
}
