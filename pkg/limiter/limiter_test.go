package limiter

import (
	"testing"
	"time"
)

func TestPerKey(t *testing.T) {
	l := New(2, 3)
	for i := 0; i < 3; i++ {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("request %d within burst refused", i)
		}
	}
	ok, wait := l.Allow("a")
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("over burst: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("keys share a bucket")
	}
}

func TestBurstAtLeastRate(t *testing.T) {
	l := New(10, 0)
	for i := 0; i < 10; i++ {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("request %d refused with burst raised to the rate", i)
		}
	}
}
