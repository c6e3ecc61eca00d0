package backends_test

import (
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/fakeclock"
)

func TestEvery(t *testing.T) {
	clk := fakeclock.New(time.Unix(0, 0))
	var at []time.Duration
	tk := backends.Every(clk, time.Second, 5*time.Second, func() { at = append(at, clk.Now().Sub(time.Unix(0, 0))) })
	for range 12 {
		clk.Advance(time.Second)
	}
	want := []time.Duration{time.Second, 6 * time.Second, 11 * time.Second}
	if len(at) != len(want) {
		t.Fatalf("calls at %v, want %v", at, want)
	}
	for i := range want {
		if at[i] != want[i] {
			t.Fatalf("calls at %v, want %v", at, want)
		}
	}
	tk.Stop()
	tk.Stop() // idempotent
	clk.Advance(time.Minute)
	if len(at) != 3 || clk.Pending() != 0 {
		t.Fatalf("after Stop: %d calls, %d timers pending", len(at), clk.Pending())
	}
}
