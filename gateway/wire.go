package gateway

import (
	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/fleet"
)

// NewFromFleet builds the dispatcher and HTTP front for a built fleet.
func NewFromFleet(fl *fleet.Fleet, cfg Config, clock backends.Clock) (*Server, error) {
	d, err := NewDispatcher(fl.Backends, fl.Models, fl.Router, clock)
	if err != nil {
		return nil, err
	}
	return NewServer(cfg, d, clock), nil
}
