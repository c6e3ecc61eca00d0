//go:build !race

package jsonw

import "testing"

// TestAppendAllocs guards the encoders: appending into a buffer with room
// allocates nothing, for strings and byte slices alike.
func TestAppendAllocs(t *testing.T) {
	buf := make([]byte, 0, 1024)
	s := "héllo \"world\"\n\u2028 \xff"
	bs := []byte(s)
	if n := testing.AllocsPerRun(1000, func() { buf = AppendString(buf[:0], s) }); n != 0 {
		t.Errorf("AppendString(string): %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { buf = AppendString(buf[:0], bs) }); n != 0 {
		t.Errorf("AppendString([]byte): %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { buf = AppendUSD(AppendFloat(buf[:0], 0.25, 32), 1e-6) }); n != 0 {
		t.Errorf("AppendFloat, AppendUSD: %v allocs, want 0", n)
	}
}
