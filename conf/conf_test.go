package conf

import (
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	d := Defaults()
	if d.RTMP != "0.0.0.0:1935" || d.HTTP != "0.0.0.0:8080" || d.MaxConnections != 1000 ||
		d.HLSFragment != 2*time.Second || d.HLSWindow != 6 || d.Replicas != 2 || d.Name == "" {
		t.Fatalf("unexpected defaults: %+v", d)
	}
	if d.DataDir() != "./data/"+d.Name {
		t.Fatalf("data dir %q", d.DataDir())
	}
}
