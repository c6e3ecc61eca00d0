package backends

import (
	"testing"
	"time"
)

// Met judges a stream on TTFT and mean TPOT, anything else end to end;
// zero targets and unknown (zero) TPOTs are not checked.
func TestSLOMet(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	stream := SLO{TTFT: ms(300), TPOT: ms(60)}
	unary := SLO{E2E: ms(50)}
	for _, tc := range []struct {
		name            string
		slo             SLO
		stream          bool
		e2e, ttft, tpot time.Duration
		want            bool
	}{
		{"stream met", stream, true, ms(5000), ms(300), ms(60), true},
		{"stream ttft late", stream, true, 0, ms(301), ms(10), false},
		{"stream tpot slow", stream, true, 0, ms(100), ms(61), false},
		{"stream tpot unknown", stream, true, 0, ms(100), 0, true},
		{"stream not judged end to end", SLO{E2E: ms(1), TTFT: ms(300)}, true, ms(900), ms(100), 0, true},
		{"unary met", unary, false, ms(50), ms(50), 0, true},
		{"unary late", unary, false, ms(51), 0, 0, false},
		{"no targets", SLO{}, false, ms(1e6), ms(1e6), ms(1e6), true},
	} {
		if got := tc.slo.Met(tc.stream, tc.e2e, tc.ttft, tc.tpot); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if !(SLO{}).Zero() || unary.Zero() {
		t.Error("Zero")
	}
}
