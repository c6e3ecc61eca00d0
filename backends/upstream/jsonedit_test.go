package upstream

import (
	"encoding/json"
	"testing"
)

func TestForceIncludeUsage(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		changed  bool
	}{
		{`{"model":"m","stream":true}`, `{"stream_options":{"include_usage":true},"model":"m","stream":true}`, true},
		{` { } `, ` {"stream_options":{"include_usage":true} } `, true},
		{`{"stream_options":null,"a":1}`, `{"stream_options":{"include_usage":true},"a":1}`, true},
		{`{"stream_options":{},"a":1}`, `{"stream_options":{"include_usage":true},"a":1}`, true},
		{`{"stream_options":{"x":"}"}}`, `{"stream_options":{"include_usage":true,"x":"}"}}`, true},
		{`{"stream_options":{"include_usage":false}}`, `{"stream_options":{"include_usage":true}}`, true},
		{`{"stream_options": { "include_usage" : true }}`, `{"stream_options": { "include_usage" : true }}`, false},
		// Nested look-alikes and strings are skipped, not matched.
		{`{"messages":[{"content":"\"stream_options\":{}"}],"meta":{"stream_options":1}}`,
			`{"stream_options":{"include_usage":true},"messages":[{"content":"\"stream_options\":{}"}],"meta":{"stream_options":1}}`, true},
		// Not an object, or malformed: left alone.
		{`[1]`, `[1]`, false},
		{`{"a":`, `{"a":`, false},
		{`{"stream_options":{"include_usage":}`, `{"stream_options":{"include_usage":}`, false},
		{``, ``, false},
	} {
		got, changed := forceIncludeUsage([]byte(tc.in))
		if string(got) != tc.want || changed != tc.changed {
			t.Errorf("forceIncludeUsage(%s) = %s, %v; want %s, %v", tc.in, got, changed, tc.want, tc.changed)
		}
		if changed && !json.Valid(got) {
			t.Errorf("forceIncludeUsage(%s) = %s: invalid JSON", tc.in, got)
		}
	}
}

func TestChunkUsage(t *testing.T) {
	for _, tc := range []struct {
		in            string
		ok, noChoices bool
		total         int
	}{
		{`{"choices":[{"delta":{"content":"\"usage\": {"}}]}`, false, false, 0},
		{`{"choices":[],"usage":null}`, false, false, 0},
		{`{"choices":[],"usage" : {"prompt_tokens":1,"completion_tokens":2}}`, true, true, 3},
		{`{"choices":[{"index":0}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`, true, false, 3},
	} {
		u, ok, noChoices := chunkUsage([]byte(tc.in))
		if ok != tc.ok || noChoices != tc.noChoices || u.TotalTokens != tc.total {
			t.Errorf("chunkUsage(%s) = %+v, %v, %v", tc.in, u, ok, noChoices)
		}
	}
}
