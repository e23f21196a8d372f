//go:build !linux

package netpoll

import (
	"context"
	"errors"
	"net"
)

// ErrUnsupported is returned where the platform has no poller: every
// connection is then read by a goroutine of its own.
var ErrUnsupported = errors.New("netpoll: not supported on this platform")

// Poller is not available on this platform.
type Poller struct{}

// New returns ErrUnsupported.
func New(context.Context) (*Poller, error) { return nil, ErrUnsupported }

// Wait returns ErrUnsupported.
func (p *Poller) Wait(int32, func()) error { return ErrUnsupported }

// Forget does nothing.
func (p *Poller) Forget(int32) {}

// Close does nothing.
func (p *Poller) Close() {}

// FD returns ErrUnsupported.
func FD(net.Conn) (int32, error) { return 0, ErrUnsupported }
