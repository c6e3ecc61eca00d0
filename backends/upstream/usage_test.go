package upstream

import "testing"

func TestLastUsage(t *testing.T) {
	cases := []struct {
		body string
		ok   bool
		want int
	}{
		{`{"choices":[{"message":{"content":"the \"usage\": {\"total_tokens\": 99} trap"}}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`, true, 7},
		{`{"usage":{"prompt_tokens":1,"total_tokens":1},"model":"m"}`, true, 1},
		{`{"usage" : { "prompt_tokens" : 2 , "completion_tokens":1, "total_tokens": 3 } }`, true, 3},
		{`{"choices":[]}`, false, 0},
		{`{"usage":null}`, false, 0},
		{`{"usage":{"total_tokens":`, false, 0},
	}
	for _, c := range cases {
		u, ok := lastUsage([]byte(c.body))
		if ok != c.ok || u.TotalTokens != c.want {
			t.Errorf("%s: got %+v %v, want total %d ok %v", c.body, u, ok, c.want, c.ok)
		}
	}
}
