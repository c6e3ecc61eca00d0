package jsonscan

import "testing"

func TestKeyIs(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want bool
	}{
		{`model`, true}, {`\u006dodel`, true}, {`\u006D\u006f\u0064\u0065\u006c`, true},
		{`Model`, false}, {`models`, false}, {`mode`, false}, {`mode\u006c2`, false},
		{`\u006dode`, false}, {`mod\el`, false}, {`mod\u00`, false}, {`mod\u00e9l`, false},
		{`mod\u0065\`, false}, {`\u0000model`, false},
	} {
		if got := KeyIs([]byte(tc.raw), "model"); got != tc.want {
			t.Errorf("KeyIs(%s) = %v, want %v", tc.raw, got, tc.want)
		}
	}
}
