package gateway

import (
	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/fleet"
)

// NewFromFleet builds the dispatcher (with one batcher per backend, from the
// models' batching settings) and HTTP front for a built fleet. Close the
// dispatcher (Server.Dispatcher().Close()) when the fronts have stopped.
func NewFromFleet(fl *fleet.Fleet, cfg Config, clock backends.Clock) (*Server, error) {
	d, err := NewDispatcher(fl.Backends, fl.Models, fl.Router, clock, WithBatching(fl.Batching))
	if err != nil {
		return nil, err
	}
	return NewServer(cfg, d, clock), nil
}
