package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/router"
)

// The dispatcher judges each request's SLO from its arrival, as its client
// sees it, for the router's margin steering.
func TestPlacementSLOOutcome(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	res := &backends.Result{}
	res.Usage.CompletionTokens = 11
	for _, tc := range []struct {
		name string
		p    Placement
		end  time.Duration
		res  *backends.Result
		err  error
		want router.SLOOutcome
	}{
		{"e2e met", Placement{arrival: t0, slo: backends.SLO{E2E: ms(50)}}, ms(50), res, nil, router.SLOMet},
		{"e2e missed", Placement{arrival: t0, slo: backends.SLO{E2E: ms(50)}}, ms(51), res, nil, router.SLOMissed},
		{"stream met", Placement{arrival: t0, first: t0.Add(ms(300)), stream: true, slo: backends.SLO{TTFT: ms(300), TPOT: ms(60)}}, ms(900), res, nil, router.SLOMet},
		{"stream ttft missed", Placement{arrival: t0, first: t0.Add(ms(301)), stream: true, slo: backends.SLO{TTFT: ms(300), TPOT: ms(60)}}, ms(400), res, nil, router.SLOMissed},
		{"stream tpot missed", Placement{arrival: t0, first: t0.Add(ms(100)), stream: true, slo: backends.SLO{TTFT: ms(300), TPOT: ms(60)}}, ms(710), res, nil, router.SLOMissed},
		{"timeout", Placement{arrival: t0, slo: backends.SLO{E2E: ms(50)}}, ms(10), nil, fmt.Errorf("x: %w", backends.ErrTimeout), router.SLOMissed},
		{"backend down", Placement{arrival: t0, slo: backends.SLO{E2E: ms(50)}}, ms(10), nil, backends.ErrUnavailable, router.SLOMissed},
		{"client's error", Placement{arrival: t0, slo: backends.SLO{E2E: ms(50)}}, ms(10), nil, backends.ErrBadRequest, router.SLOUnknown},
		{"no SLO", Placement{arrival: t0}, ms(10), res, nil, router.SLOUnknown},
	} {
		if got := tc.p.sloOutcome(t0.Add(tc.end), tc.res, tc.err); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
