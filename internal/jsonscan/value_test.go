package jsonscan

import "testing"

// TestValue checks the end of each kind of value, and -1 for malformed or
// truncated ones.
func TestValue(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int // index just past the value starting at 0
	}{
		{`"a\"b" ,`, 6}, {`{"k":["}",{"x":1}]} x`, 19}, {`[1, 2]`, 6}, {`-1.5e3,`, 6}, {`true}`, 4}, {`null`, 4},
		{`"open`, -1}, {`{"k":1`, -1}, {`[`, -1}, {`,`, -1}, {`}`, -1}, {``, -1}, {`"\`, -1},
	} {
		if got := Value([]byte(tc.in), 0); got != tc.want {
			t.Errorf("Value(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
	if got := Space([]byte(" \t\r\n x"), 0); got != 5 {
		t.Errorf("Space = %d, want 5", got)
	}
}
