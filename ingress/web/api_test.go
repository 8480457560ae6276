package web

import "testing"

// /api/v1/cluster puts the envelope's code in front of the view's own fields, byte for
// byte what a view struct with a leading Code field gave.
func TestClusterEnvelope(t *testing.T) {
	s, h := testServer(t)
	type view struct {
		Self    string   `json:"self"`
		Leader  string   `json:"leader"`
		Members []string `json:"members"`
		Note    string   `json:"note"`
	}
	for _, c := range []struct {
		v    any
		want string
	}{
		{view{Self: "n1", Leader: "n2", Members: []string{}, Note: "<a&b>"},
			`{"code":0,"self":"n1","leader":"n2","members":[],"note":"\u003ca\u0026b\u003e"}` + "\n"},
		{struct{}{}, `{"code":0}` + "\n"},
	} {
		s.Cluster = func() any { return c.v }
		if w := serveReq(h, "GET", "/api/v1/cluster"); w.Code != 200 || w.Body.String() != c.want {
			t.Errorf("GET /api/v1/cluster = %d %q, want %q", w.Code, w.Body.String(), c.want)
		}
	}
	s.Cluster = nil
	if w := serveReq(h, "GET", "/api/v1/cluster"); w.Body.String() != `{"code":0,"leader":"n1","members":[],"self":"n1","streams":[]}`+"\n" {
		t.Errorf("GET /api/v1/cluster unclustered = %q", w.Body.String())
	}
}
