//go:build linux

// Package netpoll tells when an idle connection has input, without a
// goroutine blocked on it: connections wait in one epoll set, watched by a
// single goroutine, so a gateway holding many idle connections holds no
// goroutine (and no read buffer) for each.
//
// A connection is armed once per wait (EPOLLONESHOT): when input (or a
// hang-up) arrives, the poller calls the connection's callback on a new
// goroutine and forgets it until it is armed again. Reading itself still
// goes through the connection's usual net.Conn methods.
package netpoll

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrUnsupported is returned by Wait for a connection without a file
// descriptor of its own (a TLS connection, a pipe): it must be read by a
// goroutine of its own.
var ErrUnsupported = errors.New("netpoll: connection has no pollable file descriptor")

// Poller is one epoll set and the goroutine that watches it.
type Poller struct {
	epfd int
	wake int // an eventfd that interrupts epoll_wait on Close

	mu      sync.Mutex
	waiting map[int32]func() // fd -> callback of each armed connection
	added   map[int32]bool   // fds in the epoll set

	done chan struct{}
}

// New starts a poller; it runs until ctx is done or Close is called.
func New(ctx context.Context) (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("netpoll: epoll_create: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("netpoll: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, fmt.Errorf("netpoll: epoll_ctl: %w", err)
	}
	p := &Poller{epfd: epfd, wake: wake, waiting: make(map[int32]func()), added: make(map[int32]bool), done: make(chan struct{})}
	go p.run()
	context.AfterFunc(ctx, p.Close)
	return p, nil
}

// Wait arms the connection with file descriptor fd (see FD): ready is
// called, once, on a new goroutine when it has input or is hung up. Forget
// must be called before the connection is closed.
func (p *Poller) Wait(fd int32, ready func()) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed() {
		return net.ErrClosed
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: fd}
	op := unix.EPOLL_CTL_MOD
	if !p.added[fd] {
		op = unix.EPOLL_CTL_ADD
	}
	err := unix.EpollCtl(p.epfd, op, int(fd), &ev)
	if errors.Is(err, unix.ENOENT) { // closed and reopened without Forget
		err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	}
	if err != nil {
		return fmt.Errorf("netpoll: epoll_ctl: %w", err)
	}
	p.added[fd] = true
	p.waiting[fd] = ready
	return nil
}

// Forget removes the connection with file descriptor fd from the poller;
// a pending callback is not called. Call it before closing the connection,
// so that its descriptor, once reused, is not mistaken for it.
func (p *Poller) Forget(fd int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.added[fd] && !p.closed() { // a closed poller's descriptor may be another file's now
		unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
	}
	delete(p.added, fd)
	delete(p.waiting, fd)
}

// closed reports whether the poller has stopped; call it with p.mu held.
func (p *Poller) closed() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Close stops the poller; callbacks still pending are not called.
func (p *Poller) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed() {
		return
	}
	close(p.done)
	var one [8]byte
	one[0] = 1
	unix.Write(p.wake, one[:])
}

// run waits for events and calls the callback of each ready connection.
func (p *Poller) run() {
	defer func() { // under p.mu, so that no Wait or Forget uses a closed descriptor
		p.mu.Lock()
		defer p.mu.Unlock()
		if !p.closed() {
			close(p.done) // epoll_wait failed
		}
		unix.Close(p.epfd)
		unix.Close(p.wake)
	}()
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil && !errors.Is(err, syscall.EINTR) {
			return
		}
		for _, ev := range events[:max(n, 0)] {
			if ev.Fd == int32(p.wake) {
				return
			}
			if ready := p.take(ev.Fd); ready != nil {
				go ready()
			}
		}
	}
}

// take returns and forgets the callback armed for fd.
func (p *Poller) take(fd int32) func() {
	p.mu.Lock()
	defer p.mu.Unlock()
	ready := p.waiting[fd]
	delete(p.waiting, fd)
	return ready
}

// FD returns nc's file descriptor, without duplicating it, or
// ErrUnsupported when nc has none of its own.
func FD(nc net.Conn) (int32, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return 0, ErrUnsupported
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, ErrUnsupported
	}
	var fd int32 = -1
	if err := rc.Control(func(f uintptr) { fd = int32(f) }); err != nil {
		return 0, fmt.Errorf("netpoll: %w", err)
	}
	return fd, nil
}
