package scripting

import (
	"testing"
	"time"
)

func TestInboxBytesWaitsForRoom(t *testing.T) {
	var b inboxBytes
	if !b.acquire(600, 1000, nil, nil) || !b.acquire(400, 1000, nil, nil) {
		t.Fatal("room within the bound refused")
	}
	got := make(chan bool)
	go func() { got <- b.acquire(300, 1000, nil, nil) }()
	select {
	case <-got:
		t.Fatal("took room past the bound")
	case <-time.After(50 * time.Millisecond): // it should still be waiting; a late wrong answer fails below
	}
	b.release(400)
	select {
	case ok := <-got:
		if !ok {
			t.Fatal("acquire gave up")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no room after a release")
	}
	if b.used != 900 {
		t.Errorf("used %d, want 900", b.used)
	}
}

func TestInboxBytesTakesAnOversizeMessageWhenEmpty(t *testing.T) {
	var b inboxBytes
	if !b.acquire(5000, 1000, nil, nil) {
		t.Fatal("an empty inbox refused a large message")
	}
	stop := make(chan struct{})
	got := make(chan bool)
	go func() { got <- b.acquire(1, 1000, nil, stop) }()
	close(stop)
	if <-got {
		t.Fatal("took room in a full inbox")
	}
	if b.used != 5000 {
		t.Errorf("used %d after giving up, want 5000", b.used)
	}
}
