package membership

import "testing"

func TestAdvertise(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
	}{
		{[]string{"", "0.0.0.0:7946"}, "127.0.0.1:7946"},
		{[]string{"10.0.0.5", "0.0.0.0:7946"}, "10.0.0.5:7946"},
		{[]string{"10.0.0.5:9000", "0.0.0.0:7946"}, "10.0.0.5:9000"},
		{[]string{"", "[::]:7947", "10.0.0.6:7946"}, "10.0.0.6:7947"},
		{[]string{"0.0.0.0:0", "127.0.0.1:41234"}, "127.0.0.1:41234"},
		{[]string{"", "192.168.1.2:1935", "10.0.0.9"}, "192.168.1.2:1935"},
		{[]string{"fe80::1", ":8080"}, "[fe80::1]:8080"},
		{[]string{"", "0.0.0.0:0"}, "127.0.0.1:0"},
	} {
		if got := Advertise(c.in...); got != c.want {
			t.Errorf("Advertise(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
