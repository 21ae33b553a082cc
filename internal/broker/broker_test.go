package broker

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestDeliversToMatchingSubscribers(t *testing.T) {
	b := New[int]()
	even := b.Subscribe(10, func(v int) bool { return v%2 == 0 })
	all := b.Subscribe(10, nil)
	for i := range 4 {
		b.Publish(i)
	}
	if got := drain(even.C, 2); got != "[0 2]" {
		t.Fatalf("even got %s", got)
	}
	if got := drain(all.C, 4); got != "[0 1 2 3]" {
		t.Fatalf("all got %s", got)
	}
	all.Close()
	all.Close()
	if _, ok := <-all.C; ok || all.Dropped() {
		t.Fatal("closed subscription still open, or marked dropped")
	}
	if b.Len() != 1 {
		t.Fatalf("%d subscribers after close", b.Len())
	}
}

func TestSlowSubscriberIsDroppedWithoutBlockingOthers(t *testing.T) {
	b := New[int]()
	slow := b.Subscribe(2, nil) // never read
	fast := b.Subscribe(100, nil)
	done := make(chan struct{})
	go func() {
		for i := range 50 {
			b.Publish(i)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a slow subscriber")
	}
	if got := len(drainAll(fast.C)); got != 50 {
		t.Fatalf("fast subscriber got %d of 50", got)
	}
	if !slow.Dropped() {
		t.Fatal("slow subscriber not dropped")
	}
	if got := drainAll(slow.C); len(got) != 2 {
		t.Fatalf("slow subscriber kept %d buffered values, want 2", len(got))
	}
}

func TestConcurrentPublishAndClose(t *testing.T) {
	b := New[int]()
	var wg sync.WaitGroup
	for range 20 {
		s := b.Subscribe(1, nil)
		wg.Add(2)
		go func() { defer wg.Done(); s.Close() }()
		go func() { defer wg.Done(); b.Publish(1) }()
	}
	wg.Wait()
}

func drain(c <-chan int, n int) string {
	out := make([]int, 0, n)
	for range n {
		out = append(out, <-c)
	}
	return fmt.Sprint(out)
}

func drainAll(c <-chan int) []int {
	var out []int
	for {
		select {
		case v, ok := <-c:
			if !ok {
				return out
			}
			out = append(out, v)
		default:
			return out
		}
	}
}
