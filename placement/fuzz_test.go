package placement

import (
	"bufio"
	"bytes"
	"io"
	"testing"

	"github.com/hashicorp/raft"
)

// FuzzRPCRequest feeds arbitrary bytes to the raft port's request reader: no panic, no
// line past maxRequest, and an accepted request is one of the known ops with bounded
// names.
func FuzzRPCRequest(f *testing.F) {
	f.Add([]byte(`{"op":"acquire","stream":"live/a","node":"n1"}` + "\n"))
	f.Add([]byte(`{"op":"release","stream":"live/a","node":"n1","epoch":12}` + "\n" + `{"op":"drain","node":"n1"}` + "\n"))
	f.Add([]byte(`{"op":"edge","stream":"live/a","node":"n2","join":true}`))
	f.Add([]byte(`{"op":"acquire","stream":"` + string(bytes.Repeat([]byte("a"), 2000)) + `"}` + "\n"))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for {
			line, err := readLine(r, maxRequest)
			if len(line) > maxRequest {
				t.Fatalf("line of %d bytes", len(line))
			}
			if err != nil && len(line) == 0 {
				return
			}
			req, derr := decodeRPC(line)
			if derr == nil && (len(req.Stream) > maxName || len(req.Node) > maxName) {
				t.Fatalf("accepted names of %d/%d bytes", len(req.Stream), len(req.Node))
			}
			if err != nil {
				return
			}
		}
	})
}

// FuzzFSMApply applies arbitrary log entries and snapshots to a fresh FSM: a bad entry
// is an error result, never a panic.
func FuzzFSMApply(f *testing.F) {
	f.Add([]byte(`{"op":"cas","u":[{"s":"live/a","x":0,"m":"n1","r":["n2","n3"],"ne":true}]}`))
	f.Add([]byte(`{"op":"edge","s":"live/a","n":"n4","j":true}`))
	f.Add([]byte(`{"op":"members","m":[{"name":"n1","state":"alive","inc":3,"key":"ab"}]}`))
	f.Add([]byte(`{"streams":{"live/a":{"stream":"live/a","master":"n1","replicas":null,"edges":null,"epoch":3}},"members":{}}`))
	f.Add([]byte(`{"op":"cas","u":[{"s":"live/a","x":5,"d":true}]}`))
	f.Add([]byte(`{"op":"cas","v":2,"u":[{"s":"live/a","x":1,"xe":true,"d":true}]}`))
	f.Add([]byte(`{"op":"evict","v":9}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fsm := newFSM(nil, nil)
		seed := &raft.Log{Index: 1, Data: []byte(`{"op":"cas","u":[{"s":"live/a","x":0,"m":"n1","ne":true}]}`)}
		fsm.Apply(seed)
		fsm.Apply(&raft.Log{Index: 2, Data: data})
		_ = fsm.all()
		_ = fsm.memberList()
		_ = fsm.Restore(io.NopCloser(bytes.NewReader(data)))
		_ = fsm.all()
	})
}
