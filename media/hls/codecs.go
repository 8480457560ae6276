package hls

import "fmt"

// FLV codec names, for the line that says why a track is not packaged.
var (
	videoCodecs = map[uint8]string{2: "Sorenson H.263", 3: "Screen Video", 4: "On2 VP6", 5: "On2 VP6 alpha", 6: "Screen Video v2", 12: "HEVC (non-standard id 12)"}
	audioCodecs = map[uint8]string{0: "linear PCM", 1: "ADPCM", 2: "MP3", 3: "linear PCM LE", 4: "Nellymoser 16 kHz", 5: "Nellymoser 8 kHz", 6: "Nellymoser", 7: "G.711 A-law", 8: "G.711 mu-law", 9: "Enhanced RTMP audio", 11: "Speex", 14: "MP3 8 kHz", 15: "device-specific"}
)

func codecName(names map[uint8]string, id uint8) string {
	if n, ok := names[id]; ok {
		return n
	}
	return fmt.Sprintf("codec id %d", id)
}
