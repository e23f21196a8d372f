package hub

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// TestNumberedMessagesGoOutInOrder: messages wait for the numbers reserved
// before them in their room, plain ones included; a number given up
// releases them; a number is published once; the queue is forgotten once
// empty.
func TestNumberedMessagesGoOutInOrder(t *testing.T) {
	h := New()
	rs, ctx := h.Local(), context.Background()
	publish := func(data string, n uint64) error {
		_, err := rs.Publish(ctx, "r", Message{Data: data, Keep: 10, Number: n})
		return err
	}
	first, _ := rs.Reserve(ctx, "r", 0)
	second, _ := rs.Reserve(ctx, "r", 0)
	if other, _ := rs.Reserve(ctx, "other", 0); other <= second || second <= first {
		t.Fatalf("numbers %d, %d, then %d in another room: want each greater than the last", first, second, other)
	}
	rs.GiveUp(ctx, "other", second+1)
	if err := publish("plain", 0); err != nil {
		t.Fatal(err)
	}
	if err := publish("second", second); err != nil {
		t.Fatal(err)
	}
	if got := h.History("r", -1); len(got) != 0 {
		t.Fatalf("history %q while the first number is held", got)
	}
	rs.GiveUp(ctx, "r", first)
	if got := h.History("r", -1); !slices.Equal(got, []string{"second", "plain"}) {
		t.Fatalf("history %q once the first number was given up", got)
	}
	for _, n := range []uint64{first, second, 999} {
		if err := publish("again", n); !errors.Is(err, ErrNotReserved) {
			t.Errorf("publishing number %d (given up, published, never given): %v", n, err)
		}
	}
	if n := h.numbers.active.Load(); n != 0 {
		t.Errorf("%d queues left", n)
	}
	if n, _ := rs.Reserve(ctx, "r", 1000); n != 1001 {
		t.Errorf("reserve after 1000 gave %d", n)
	}
}
