package bus

import (
	"sync"
	"testing"
)

func TestBusOrderAndCancel(t *testing.T) {
	var b Bus[int]
	var mu sync.Mutex
	var got []int
	done := make(chan struct{})
	b.Add(func(v int) {
		mu.Lock()
		got = append(got, v)
		mu.Unlock()
		if v == 99 {
			close(done)
		}
	})
	cancel := b.Add(func(int) { t.Error("cancelled subscriber called") })
	cancel()
	for i := 0; i < 100; i++ {
		b.Publish(i)
	}
	<-done
	b.Close()
	b.Publish(100) // after Close: dropped
	for i, v := range got {
		if v != i {
			t.Fatalf("delivery %d = %d: out of order", i, v)
		}
	}
}

func TestCloseUnused(t *testing.T) {
	var b Bus[string]
	b.Close()
	b.Close()
}
