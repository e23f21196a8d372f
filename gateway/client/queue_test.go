package client

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/moongate/moongate/gateway/wsproto"
)

// frameOf returns a binary frame of n (128 to 65539) bytes in all.
func frameOf(n int) []byte { return wsproto.Frame(ws.OpBinary, make([]byte, n-4)) }

func TestSendQueueIsBoundedInBytes(t *testing.T) {
	c := New(&Request{}, Options{SendQueue: 100, SendQueueBytes: 1000, OnFull: DropNew}, nil)
	for range 2 {
		if err := c.Send(frameOf(400)); err != nil {
			t.Fatalf("send within the bound: %v", err)
		}
	}
	if err := c.Send(frameOf(400)); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("send past 1000 bytes: %v, want ErrQueueFull", err)
	}
	if err := c.Send(frameOf(200)); err != nil {
		t.Fatalf("send that still fits: %v", err)
	}
	if got := c.QueuedBytes(); got != 1000 {
		t.Errorf("queued bytes %d, want 1000", got)
	}
}

func TestFrameLargerThanTheByteBoundFitsAnEmptyQueue(t *testing.T) {
	c := New(&Request{}, Options{SendQueueBytes: 1000}, nil)
	if err := c.Send(frameOf(5000)); err != nil {
		t.Fatalf("a large frame into an empty queue: %v", err)
	}
	if err := c.Send(frameOf(200)); !errors.Is(err, ErrSlowClient) || !c.Closing() {
		t.Fatalf("anything more: %v (closing %v), want ErrSlowClient and a close", err, c.Closing())
	}
}

// TestFramesBeingWrittenCountAgainstTheQueue: a client that does not read
// costs at most its queue's bytes, counting the frames its writer holds.
func TestFramesBeingWrittenCountAgainstTheQueue(t *testing.T) {
	server, peer := net.Pipe() // the peer never reads: a write blocks
	defer peer.Close()
	c := New(&Request{}, Options{SendQueueBytes: 1000, OnFull: DropNew}, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(context.Background(), server, bufio.NewReader(server), Handlers{Message: func(wsproto.Message) {}, Closed: func(Closed) {}}, nil)
	}()
	if err := c.Send(frameOf(600)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Queued() > 0 { // the writer has taken the frame and is stuck writing it
		if time.Now().After(deadline) {
			t.Fatal("the writer never took the frame")
		}
		time.Sleep(time.Millisecond)
	}
	if got := c.QueuedBytes(); got != 600 {
		t.Errorf("queued bytes while the frame is written: %d, want 600", got)
	}
	if err := c.Send(frameOf(600)); !errors.Is(err, ErrQueueFull) {
		t.Errorf("send while 600 of 1000 bytes are being written: %v, want ErrQueueFull", err)
	}
	peer.Close()
	<-done
}

func TestWrittenFramesGiveBackTheirRoom(t *testing.T) {
	server, peer := net.Pipe()
	defer peer.Close()
	c := New(&Request{}, Options{SendQueueBytes: 1000, OnFull: DropNew}, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(context.Background(), server, bufio.NewReader(server), Handlers{Message: func(wsproto.Message) {}, Closed: func(Closed) {}}, nil)
	}()
	buf := make([]byte, 600)
	for i := range 5 { // 3000 bytes through a 1000-byte queue, one frame at a time
		if err := c.Send(frameOf(600)); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		peer.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(peer, buf); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for c.QueuedBytes() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("frame %d written, yet %d bytes still count", i, c.QueuedBytes())
			}
			time.Sleep(time.Millisecond)
		}
	}
	peer.Close()
	<-done
}
