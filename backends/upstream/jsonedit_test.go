package upstream

import (
	"encoding/json"
	"reflect"
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

func TestSetModel(t *testing.T) {
	const up = `"meta-llama/Llama-3.1-8B-Instruct"`
	for _, tc := range []struct {
		in, want string
		changed  bool
	}{
		{`{"model":"llama","stream":true}`, `{"model":` + up + `,"stream":true}`, true},
		{` { "model" :  "llama" , "x":1 } `, ` { "model" :  ` + up + ` , "x":1 } `, true},
		// An escaped value and an escaped key.
		{`{"model":"ll\"a\u006da","n":1}`, `{"model":` + up + `,"n":1}`, true},
		{`{"mod\u0065l":"llama"}`, `{"mod\u0065l":` + up + `}`, true},
		{`{"m\u006F\u0064el":"llama"}`, `{"m\u006F\u0064el":` + up + `}`, true},
		// Look-alikes that are not the key: nested objects, strings, other keys.
		{`{"messages":[{"role":"user","content":"\"model\":\"x\""}],"meta":{"model":"inner"},"model":"llama"}`,
			`{"messages":[{"role":"user","content":"\"model\":\"x\""}],"meta":{"model":"inner"},"model":` + up + `}`, true},
		{`{"Model":"a","model_x":"b","\u006dodel2":"c","model":"llama"}`, `{"Model":"a","model_x":"b","\u006dodel2":"c","model":` + up + `}`, true},
		// Every duplicate is replaced: any decoder then reads the upstream name.
		{`{"model":"a","x":{"model":1},"model":null}`, `{"model":` + up + `,"x":{"model":1},"model":` + up + `}`, true},
		// None: one is added.
		{`{"messages":[]}`, `{"model":` + up + `,"messages":[]}`, true},
		{` { } `, ` {"model":` + up + ` } `, true},
		// Already the upstream name: no edit.
		{`{"model":` + up + `}`, `{"model":` + up + `}`, false},
		// Not an object, or malformed: left alone.
		{`["model"]`, `["model"]`, false},
		{`{"model":"a",}`, `{"model":"a",}`, false},
		{`{"model":"a"`, `{"model":"a"`, false},
		{`{"model" "a"}`, `{"model" "a"}`, false},
		{`{"mod\`, `{"mod\`, false},
		{``, ``, false},
	} {
		got, changed := setModel(nil, []byte(tc.in), up, true, true)
		if string(got) != tc.want || changed != tc.changed {
			t.Errorf("setModel(%s) = %s, %v; want %s, %v", tc.in, got, changed, tc.want, tc.changed)
		}
		if changed && !json.Valid(got) {
			t.Errorf("setModel(%s) = %s: invalid JSON", tc.in, got)
		}
	}
	// A response: only the first member, and nothing is added.
	for _, tc := range []struct{ in, want string }{
		{`{"id":"c","model":"meta","x":{"model":"m"},"model":"dup"}`, `{"id":"c","model":"llama","x":{"model":"m"},"model":"dup"}`},
		{`{"id":"c"}`, `{"id":"c"}`},
		{`{"id":"c","model":"llama"}`, `{"id":"c","model":"llama"}`},
	} {
		got, _ := setModel(nil, []byte(tc.in), `"llama"`, false, false)
		if string(got) != tc.want {
			t.Errorf("setModel(%s, response) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestSetModelAllocs: a streamed chunk is edited into a reused buffer, and a
// body that needs no edit is not copied.
func TestSetModelAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	chunk := []byte(`{"id":"c","object":"chat.completion.chunk","created":1,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}`)
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() {
		buf, _ = setModel(buf[:0], chunk, `"llama-3.1-8b-instruct"`, false, false)
	}); n != 0 {
		t.Errorf("%v allocations per chunk edit, want 0", n)
	}
	same := []byte(`{"model":"llama","messages":[]}`)
	if n := testing.AllocsPerRun(100, func() { _, _ = setModel(nil, same, `"llama"`, true, true) }); n != 0 {
		t.Errorf("%v allocations when nothing changes, want 0", n)
	}
	body := []byte(`{"model":"llama","messages":[{"role":"user","content":"hi"}]}`)
	if n := testing.AllocsPerRun(100, func() { _, _ = setModel(nil, body, `"meta-llama/Llama-3.1-8B-Instruct"`, true, true) }); n != 1 {
		t.Errorf("%v allocations for a request body, want 1", n)
	}
}

// FuzzSetModel: for any JSON object, the edited request body is valid JSON
// that decodes to the input with only "model" changed (set, or added); a
// response edit changes nothing but "model". Anything else is left as it is.
func FuzzSetModel(f *testing.F) {
	for _, s := range []string{
		`{"model":"llama","stream":true}`,
		`{"messages":[{"role":"user","content":"\"model\":\"x\""}],"meta":{"model":"inner"},"model":"llama"}`,
		`{"mod\u0065l":"a","model":"b"}`,
		` { "model" : 1 , "a" : [ {"model":{}} ] } `,
		`{}`, `[]`, `"model"`, `{"a":"\\"}`, `{"model":null}`,
	} {
		f.Add([]byte(s), "meta-llama/Llama-3.1-8B-Instruct")
	}
	f.Fuzz(func(t *testing.T, body []byte, name string) {
		quoted := jsonString(name)
		orig := append([]byte(nil), body...)
		out, changed := setModel(nil, body, quoted, true, true)
		if string(body) != string(orig) {
			t.Fatal("setModel modified its input")
		}
		var in map[string]any
		if json.Unmarshal(body, &in) != nil || in == nil {
			if changed && json.Valid(body) {
				t.Fatalf("setModel edited a JSON value that is not an object: %s", body)
			}
			return
		}
		var got map[string]any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("setModel(%s) = %s: %v", body, out, err)
		}
		var wantName string
		_ = json.Unmarshal([]byte(quoted), &wantName)
		in["model"] = wantName
		if !reflect.DeepEqual(got, in) {
			t.Fatalf("setModel(%s) = %s: decodes to %v, want %v", body, out, got, in)
		}

		// A response: only "model" may change.
		out, _ = setModel(nil, body, quoted, false, false)
		got = nil
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("setModel(%s, response) = %s: %v", body, out, err)
		}
		delete(got, "model")
		delete(in, "model")
		if !reflect.DeepEqual(got, in) {
			t.Fatalf("setModel(%s, response) = %s: changed more than the model", body, out)
		}
	})
}
