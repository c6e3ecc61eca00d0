package loadtest

import (
	"fmt"
	"strings"
	"time"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/catalog"
	"github.com/accelgate/accelgate/backends/fleet"
)

// Scenario names of the simulator.
//
//   - "steady": nothing changes during the run.
//   - "drift": one backend becomes DriftFactor (3×) slower from halfway
//     through the run's planned virtual duration (emulator.Core.SetSlowdown).
//     The backend is the one named with -scenario-backend, by default the
//     first backend of kind gpu in the fleet file (h100-0 in the default
//     fleet, the fleet's fastest and busiest device), or the first backend
//     when there is no GPU. The router is not told: it keeps predicting from
//     the profile and only sees its books fill up.
//   - "edge-failure": one edge node stops answering at 25% of the planned
//     duration for EdgeFailureFor (one minute), then answers again. The node
//     is the one named with -scenario-backend, by default the first backend
//     of kind edge. A run whose planned duration is under two minutes gets a
//     window of half its duration instead (25%–75%), so that the outage and
//     the recovery both fit in the run; ScenarioPlan.Note says so. "Stops
//     answering" is a partition: see SimEvent.Down.
//
// The planned duration is requests ÷ rate for a standard workload and the
// time of the last replayed request for a trace.
const (
	ScenarioSteady      = "steady"
	ScenarioDrift       = "drift"
	ScenarioEdgeFailure = "edge-failure"
)

// DriftFactor is how much slower the drifting backend becomes.
const DriftFactor = 3.0

// EdgeFailureFor is how long the edge node stays silent in "edge-failure".
const EdgeFailureFor = time.Minute

// ScenarioNames lists the simulator's scenarios.
func ScenarioNames() []string {
	return []string{ScenarioSteady, ScenarioDrift, ScenarioEdgeFailure}
}

// ScenarioPlan is a scenario placed on one run's timeline.
type ScenarioPlan struct {
	Name    string  `json:"name"`
	Backend string  `json:"backend,omitempty"` // the backend it affects
	StartS  float64 `json:"start_s,omitempty"` // virtual seconds from the start
	EndS    float64 `json:"end_s,omitempty"`   // edge-failure: when the node answers again
	Factor  float64 `json:"factor,omitempty"`  // drift: the slowdown
	Note    string  `json:"note,omitempty"`    // e.g. that the failure window was scaled
}

// PlanScenario places the named scenario on a run of planned virtual duration
// planned over fleet f: it returns the plan (for the report) and the events
// to give the Sim. backend names the affected backend ("" for the default; see
// the scenario names).
func PlanScenario(name string, f *fleet.File, cat *catalog.Catalog, backend string, planned time.Duration) (*ScenarioPlan, []SimEvent, error) {
	if name == "" {
		name = ScenarioSteady
	}
	plan := &ScenarioPlan{Name: name}
	switch name {
	case ScenarioSteady:
		if backend != "" {
			return nil, nil, fmt.Errorf("scenario %s affects no backend; drop -scenario-backend", name)
		}
		return plan, nil, nil
	case ScenarioDrift, ScenarioEdgeFailure:
	default:
		return nil, nil, fmt.Errorf("unknown scenario %q (want %s)", name, strings.Join(ScenarioNames(), ", "))
	}
	idx := -1
	if backend != "" {
		for i := range f.Backends {
			if f.Backends[i].Name == backend {
				idx = i
			}
		}
		if idx < 0 {
			return nil, nil, fmt.Errorf("scenario %s: no backend named %q in the fleet", name, backend)
		}
	} else {
		want := backends.KindGPU
		if name == ScenarioEdgeFailure {
			want = backends.KindEdge
		}
		for i := range f.Backends {
			if p, ok := cat.Get(f.Backends[i].Hardware); ok && p.Kind == want {
				idx = i
				break
			}
		}
		if idx < 0 && name == ScenarioDrift {
			idx = 0
		}
		if idx < 0 {
			return nil, nil, fmt.Errorf("scenario %s: the fleet has no backend of kind edge; name one with -scenario-backend", name)
		}
	}
	plan.Backend = f.Backends[idx].Name
	if name == ScenarioDrift {
		at := planned / 2
		plan.StartS, plan.Factor = at.Seconds(), DriftFactor
		return plan, []SimEvent{{At: at, Backend: idx, Slowdown: DriftFactor}}, nil
	}
	start, length := planned/4, EdgeFailureFor
	if planned < 2*EdgeFailureFor {
		length = planned / 2
		plan.Note = fmt.Sprintf("the run's planned duration (%.1f s) is under two minutes: the node is silent for half of it (%.1f s) instead of %v",
			planned.Seconds(), length.Seconds(), EdgeFailureFor)
	}
	plan.StartS, plan.EndS = start.Seconds(), (start + length).Seconds()
	return plan, []SimEvent{{At: start, Backend: idx, Down: true}, {At: start + length, Backend: idx, Down: false}}, nil
}
