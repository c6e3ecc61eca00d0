package upstream

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/accelgate/accelgate/internal/jsonscan"
)

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

// FuzzParseUsage: on any valid JSON object whose keys are lower case (the
// in-place parser compares keys exactly; encoding/json would also match
// other cases), parseUsage agrees with json.Unmarshal into usageJSON: the
// same counts, and an error exactly when it fails.
func FuzzParseUsage(f *testing.F) {
	for _, s := range []string{
		`{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}`,
		`{"prompt_tokens":3,"prompt_tokens_details":{"cached_tokens":2},"completion_tokens":null}`,
		`{"total_tokens":1.5}`, `{"total_tokens":"7"}`, `{"total_tokens":-0}`, `{"total_tokens":1e2}`,
		`{"total_tokens":99999999999999999999}`, `{"total_tokens":1,"total_tokens":2}`,
		`{"tot\u0061l_tokens":5}`, `{}`, `{"a":[1,{"b":"}"}],"prompt_tokens":9}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, obj []byte) {
		i := jsonscan.Space(obj, 0)
		got, ok := parseUsage(obj, i)
		if i >= len(obj) || obj[i] != '{' || !json.Valid(obj) || bytes.ContainsAny(obj, "ABCDEFGHIJKLMNOPQRSTUVWXYZ\\") {
			return // only valid objects with plain lower-case keys are compared
		}
		var want usageJSON
		err := json.Unmarshal(obj, &want)
		if (err == nil) != ok || ok && got != want {
			t.Fatalf("%s: parseUsage %+v %v, json.Unmarshal %+v %v", obj, got, ok, want, err)
		}
	})
}
