package media

import (
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"peer/media/amf0"
	"peer/media/flv"
)

// Info describes a stream's codecs as the API reports them.
type Info struct {
	VideoCodec string  `json:"video_codec,omitempty"`
	Profile    int     `json:"profile,omitempty"`
	Level      int     `json:"level,omitempty"`
	Width      int     `json:"width,omitempty"`
	Height     int     `json:"height,omitempty"`
	FPS        float64 `json:"fps,omitempty"`
	AudioCodec string  `json:"audio_codec,omitempty"`
	SampleRate int     `json:"sample_rate,omitempty"`
	Channels   int     `json:"channels,omitempty"`
}

var videoCodecNames = map[uint8]string{2: "H263", 3: "Screen", 4: "VP6", 5: "VP6A", 6: "Screen2", 7: "H264", 12: "HEVC"}
var audioCodecNames = map[uint8]string{0: "PCM", 1: "ADPCM", 2: "MP3", 3: "PCM", 4: "Nellymoser", 5: "Nellymoser", 6: "Nellymoser", 7: "G711A", 8: "G711U", 10: "AAC", 11: "Speex", 14: "MP3"}

// metadataBody turns a script-data message into an onMetaData body for players: the
// publisher's "@setDataFrame" wrapper is dropped (players would show a bogus data
// stream). Other script messages are not for players. The decoder is bounded (depth,
// values, lengths): a publisher's data message is network input.
func metadataBody(data []byte) ([]byte, bool) {
	v, err := amf0.Decode(data)
	if err != nil || len(v) == 0 {
		return nil, false
	}
	if name, _ := v[0].(string); name == "@setDataFrame" {
		v = v[1:]
	}
	if len(v) < 2 {
		return nil, false
	}
	if name, _ := v[0].(string); name != "onMetaData" {
		return nil, false
	}
	out, err := amf0.Encode(v...)
	return out, err == nil
}

func (i *Info) fromMetadata(t *flv.Tag) {
	v, err := amf0.Decode(t.Data())
	if err != nil || len(v) < 2 {
		return
	}
	obj, ok := amf0.AsObject(v[1])
	if !ok {
		return
	}
	if w, ok := obj.GetFloat64("width"); ok && i.Width == 0 {
		i.Width = int(w)
	}
	if h, ok := obj.GetFloat64("height"); ok && i.Height == 0 {
		i.Height = int(h)
	}
	if f, ok := obj.GetFloat64("framerate"); ok && i.FPS == 0 {
		i.FPS = f
	}
}

func (i *Info) fromVideoConfig(t *flv.Tag) {
	i.VideoCodec = videoCodecNames[t.VideoCodec()]
	sps := FirstSPS(t.Payload())
	if sps == nil {
		return
	}
	var s h264.SPS
	if s.Unmarshal(sps) == nil {
		i.Profile, i.Level = int(s.ProfileIdc), int(s.LevelIdc)
		i.Width, i.Height = s.Width(), s.Height()
		if f := s.FPS(); f > 0 {
			i.FPS = f
		}
	}
}

func (i *Info) fromAudioConfig(t *flv.Tag) {
	i.AudioCodec = audioCodecNames[t.AudioCodec()]
	var c mpeg4audio.AudioSpecificConfig
	if c.Unmarshal(t.Payload()) == nil {
		i.SampleRate = c.SampleRate
		i.Channels = int(c.ChannelConfig)
	}
}

// noteCodec fills codec names for streams without sequence headers (non-AAC audio,
// non-AVC video), which pass through untouched.
func (i *Info) noteCodec(t *flv.Tag) {
	switch {
	case t.Type == flv.TypeVideo && i.VideoCodec == "":
		i.VideoCodec = videoCodecNames[t.VideoCodec()]
	case t.Type == flv.TypeAudio && i.AudioCodec == "":
		i.AudioCodec = audioCodecNames[t.AudioCodec()]
	}
}

// FirstSPS returns the first SPS of an avcC record, nil if there is none.
func FirstSPS(avcc []byte) []byte {
	if len(avcc) < 8 || avcc[5]&0x1f == 0 {
		return nil
	}
	n := int(avcc[6])<<8 | int(avcc[7])
	if len(avcc) < 8+n {
		return nil
	}
	return avcc[8 : 8+n]
}
