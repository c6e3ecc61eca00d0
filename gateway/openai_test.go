package gateway

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/accelgate/accelgate/backends"
)

type errBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func mustErrBody(t *testing.T, body []byte) errBody {
	t.Helper()
	var e errBody
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Message == "" || e.Error.Type == "" {
		t.Fatalf("not an OpenAI error body: %s (%v)", body, err)
	}
	return e
}

func TestChatNonStreaming(t *testing.T) {
	e := newEnv(t, Config{})
	resp := e.do(t, "POST", "/v1/chat/completions", `{"model":"llm","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"logit_bias":{"1":2}}`)
	if resp.StatusCode() != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode(), resp.Body())
	}
	var out struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Model   string `json:"model"`
		Choices []struct {
			Index   int `json:"index"`
			Message struct {
				Role, Content string
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage struct {
			PromptTokens, CompletionTokens, TotalTokens int
		} `json:"usage"`
	}
	if err := json.Unmarshal(resp.Body(), &out); err != nil {
		t.Fatal(err)
	}
	if out.Object != "chat.completion" || out.Model != "llm" || len(out.Choices) != 1 || out.Choices[0].Message.Content != "hello there friend" || out.Choices[0].Message.Role != "assistant" {
		t.Fatalf("bad body: %s", resp.Body())
	}
	if !strings.HasPrefix(out.ID, "chatcmpl-") || out.Choices[0].FinishReason != "stop" {
		t.Fatalf("bad id or finish: %s", resp.Body())
	}
	if string(resp.Header.Peek(HeaderBackend)) != "b0" || string(resp.Header.Peek(HeaderHardware)) != "test-gpu" {
		t.Fatalf("placement headers missing: %s", resp.Header.String())
	}
	if string(resp.Header.Peek(HeaderCost)) != "0.0012500000" {
		t.Fatalf("cost header %q", resp.Header.Peek(HeaderCost))
	}
	// The body reaches the backend unchanged (for upstream passthrough).
	if got := string(e.be[0].lastReq.Body); !strings.Contains(got, `"logit_bias":{"1":2}`) {
		t.Fatalf("body not kept for passthrough: %s", got)
	}
	if e.be[0].lastReq.Priority != backends.Standard || e.be[0].lastReq.MaxTokens != 5 {
		t.Fatalf("request not decoded: %+v", e.be[0].lastReq)
	}
}

func TestHeadersSetClassAndTargets(t *testing.T) {
	e := newEnv(t, Config{})
	resp := e.do(t, "POST", "/v1/chat/completions", `{"model":"llm","messages":[{"role":"user","content":"hi"}]}`,
		HeaderPriority, "critical", HeaderSLO, "1234", HeaderTimeout, "5000")
	if resp.StatusCode() != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode(), resp.Body())
	}
	r := e.be[0].lastReq
	if r.Priority != backends.Critical || r.SLO.E2E.Milliseconds() != 1234 || r.Deadline.Sub(r.Arrival).Milliseconds() != 5000 {
		t.Fatalf("headers not applied: prio %v slo %v deadline %v", r.Priority, r.SLO, r.Deadline.Sub(r.Arrival))
	}
	// Without headers: the model's defaults; e2e = TTFT + TPOT × planned output.
	e.do(t, "POST", "/v1/chat/completions", `{"model":"llm","messages":[{"role":"user","content":"hi"}],"max_tokens":10}`)
	r = e.be[0].lastReq
	if r.SLO.E2E.Milliseconds() != 1000+60*10 || r.Deadline.Sub(r.Arrival).Seconds() != 60 {
		t.Fatalf("defaults: slo %v timeout %v", r.SLO, r.Deadline.Sub(r.Arrival))
	}
}

func TestStreamingChat(t *testing.T) {
	for _, usage := range []bool{false, true} {
		e := newEnv(t, Config{})
		body := `{"model":"llm","messages":[{"role":"user","content":"hi"}],"stream":true,"n":2`
		if usage {
			body += `,"stream_options":{"include_usage":true}`
		}
		resp := e.do(t, "POST", "/v1/chat/completions", body+"}")
		if resp.StatusCode() != 200 || string(resp.Header.ContentType()) != "text/event-stream" {
			t.Fatalf("status %d type %s", resp.StatusCode(), resp.Header.ContentType())
		}
		if string(resp.Header.Peek(HeaderBackend)) != "b0" {
			t.Fatal("streams must carry the backend header")
		}
		events := strings.Split(strings.TrimSpace(string(resp.Body())), "\n\n")
		if events[len(events)-1] != "data: [DONE]" {
			t.Fatalf("stream does not end with [DONE]: %q", events[len(events)-1])
		}
		text := map[int]string{}
		costAt := -1
		for i, ev := range events[:len(events)-1] {
			payload, ok := strings.CutPrefix(ev, "data: ")
			if !ok {
				t.Fatalf("event %d is not a data event: %q", i, ev)
			}
			var c struct {
				Object  string `json:"object"`
				Choices []struct {
					Index int
					Delta struct{ Content string }
				}
				Usage *struct {
					TotalTokens int `json:"total_tokens"`
				}
				Cost *float64 `json:"accelgate_cost_usd"`
			}
			if err := json.Unmarshal([]byte(payload), &c); err != nil {
				t.Fatalf("event %d: %v: %s", i, err, payload)
			}
			if c.Object != "chat.completion.chunk" {
				t.Fatalf("object %q", c.Object)
			}
			for _, ch := range c.Choices {
				text[ch.Index] += ch.Delta.Content
			}
			if c.Cost != nil {
				costAt = i
				if *c.Cost != 0.00125 {
					t.Fatalf("cost %v", *c.Cost)
				}
				if usage && (c.Usage == nil || c.Usage.TotalTokens != 10) {
					t.Fatalf("with include_usage the cost rides on the usage chunk: %s", payload)
				}
				if !usage && !strings.Contains(payload, `"finish_reason":"stop"`) {
					t.Fatalf("without include_usage the cost rides on the finish chunk: %s", payload)
				}
			}
		}
		if costAt != len(events)-2 {
			t.Fatalf("usage=%v: cost must be in the last chunk before [DONE], found at %d of %d", usage, costAt, len(events)-1)
		}
		if text[0] != "hello there friend" || text[1] != "hello there friend" {
			t.Fatalf("choices reassembled to %v", text)
		}
	}
}

func TestCompletionsAndEmbeddings(t *testing.T) {
	e := newEnv(t, Config{})
	resp := e.do(t, "POST", "/v1/completions", `{"model":"llm","prompt":["a","b"],"max_tokens":3}`)
	if resp.StatusCode() != 200 || !strings.Contains(string(resp.Body()), `"object":"text_completion"`) {
		t.Fatalf("completions: %d %s", resp.StatusCode(), resp.Body())
	}
	if n := strings.Count(string(resp.Body()), `"text":`); n != 2 {
		t.Fatalf("two prompts give two choices, got %d", n)
	}
	resp = e.do(t, "POST", "/v1/embeddings", `{"model":"emb","input":["x","y","z"]}`)
	var out struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(resp.Body(), &out); err != nil || len(out.Data) != 3 || out.Data[2].Index != 2 || out.Data[0].Embedding[1] != 0.8 {
		t.Fatalf("embeddings: %v %s", err, resp.Body())
	}
	if resp.Header.Peek(HeaderCost) == nil {
		t.Fatal("embeddings must carry the cost header")
	}
	resp = e.do(t, "POST", "/v1/embeddings", `{"model":"emb","input":"x","encoding_format":"base64"}`)
	if !strings.Contains(string(resp.Body()), `"embedding":"mpkZP83MTD8="`) {
		t.Fatalf("base64 embeddings: %s", resp.Body())
	}
}

func TestModels(t *testing.T) {
	e := newEnv(t, Config{})
	resp := e.do(t, "GET", "/v1/models", "")
	if string(resp.Body()) != `{"object":"list","data":[{"id":"emb","object":"model","created":0,"owned_by":"accelgate","accelgate_kind":"embedding"},{"id":"llm","object":"model","created":0,"owned_by":"accelgate","accelgate_kind":"llm"}]}` {
		t.Fatalf("models: %s", resp.Body())
	}
	if r := e.do(t, "GET", "/v1/models/llm", ""); r.StatusCode() != 200 {
		t.Fatalf("model: %d", r.StatusCode())
	}
}

func TestErrors(t *testing.T) {
	e := newEnv(t, Config{MaxBodyBytes: 1024})
	chat := func(extra string) string {
		return `{"model":"llm","messages":[{"role":"user","content":"hi"}]` + extra + `}`
	}
	cases := []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		param, code              string
	}{
		{"malformed JSON", "POST", "/v1/chat/completions", `{"model":`, nil, 400, "", ""},
		{"not an object", "POST", "/v1/chat/completions", `[1,2]`, nil, 400, "", ""},
		{"empty body", "POST", "/v1/chat/completions", ``, nil, 400, "", ""},
		{"wrong type", "POST", "/v1/chat/completions", chat(`,"max_tokens":"ten"`), nil, 400, "max_tokens", ""},
		{"missing model", "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}]}`, nil, 400, "model", ""},
		{"missing messages", "POST", "/v1/chat/completions", `{"model":"llm"}`, nil, 400, "messages", ""},
		{"bad role", "POST", "/v1/chat/completions", `{"model":"llm","messages":[{"role":"robot","content":"x"}]}`, nil, 400, "messages[0].role", ""},
		{"bad n", "POST", "/v1/chat/completions", chat(`,"n":0`), nil, 400, "n", ""},
		{"too many stops", "POST", "/v1/chat/completions", chat(`,"stop":["a","b","c","d","e"]`), nil, 400, "stop", ""},
		{"stream_options without stream", "POST", "/v1/chat/completions", chat(`,"stream_options":{"include_usage":true}`), nil, 400, "stream_options", ""},
		{"bad priority header", "POST", "/v1/chat/completions", chat(""), []string{HeaderPriority, "vip"}, 400, HeaderPriority, ""},
		{"bad slo header", "POST", "/v1/chat/completions", chat(""), []string{HeaderSLO, "soon"}, 400, HeaderSLO, ""},
		{"unknown model", "POST", "/v1/chat/completions", `{"model":"gpt-9","messages":[{"role":"user","content":"x"}]}`, nil, 404, "model", "model_not_found"},
		{"wrong kind of model", "POST", "/v1/embeddings", `{"model":"llm","input":"x"}`, nil, 400, "model", ""},
		{"empty embedding input", "POST", "/v1/embeddings", `{"model":"emb","input":[]}`, nil, 400, "input", ""},
		{"unknown route", "GET", "/v1/nothing", "", nil, 404, "", "unknown_url"},
		{"wrong method", "GET", "/v1/chat/completions", "", nil, 405, "", "method_not_allowed"},
		{"oversized body", "POST", "/v1/chat/completions", chat(`,"x":"` + strings.Repeat("a", 2000) + `"`), nil, 413, "", "request_too_large"},
		{"unknown model metadata", "GET", "/v1/models/nope", "", nil, 404, "model", "model_not_found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := e.do(t, c.method, c.path, c.body, c.headers...)
			if resp.StatusCode() != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode(), c.status, resp.Body())
			}
			eb := mustErrBody(t, resp.Body())
			if c.param != "" && (eb.Error.Param == nil || *eb.Error.Param != c.param) {
				t.Fatalf("param %v, want %q: %s", eb.Error.Param, c.param, resp.Body())
			}
			if c.code != "" && (eb.Error.Code == nil || *eb.Error.Code != c.code) {
				t.Fatalf("code %v, want %q", eb.Error.Code, c.code)
			}
		})
	}
	// The gateway keeps serving after all of that.
	if r := e.do(t, "POST", "/v1/chat/completions", chat("")); r.StatusCode() != 200 {
		t.Fatalf("after errors: %d", r.StatusCode())
	}
}

func TestBackendFailuresMapToStatuses(t *testing.T) {
	// A failing backend is retried on the other one.
	bad := &instant{err: backends.ErrUnavailable}
	good := &instant{}
	bad.desc = &backends.Descriptor{Name: "bad", Profile: testProfile("cheap", 0.1), Models: []string{"llm"}, PricePerHour: 0.1}
	good.desc = &backends.Descriptor{Name: "good", Profile: testProfile("dear", 10), Models: []string{"llm"}, PricePerHour: 10}
	e := newEnv(t, Config{}, bad, good)
	resp := e.do(t, "POST", "/v1/chat/completions", `{"model":"llm","messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode() != 200 || string(resp.Header.Peek(HeaderBackend)) != "good" || bad.calls != 1 {
		t.Fatalf("retry: status %d backend %s bad calls %d", resp.StatusCode(), resp.Header.Peek(HeaderBackend), bad.calls)
	}

	// Sheddable requests that no backend can serve in time: 429 + Retry-After.
	e2 := newEnv(t, Config{})
	resp = e2.do(t, "POST", "/v1/chat/completions", `{"model":"llm","messages":[{"role":"user","content":"hi"}]}`,
		HeaderPriority, "sheddable", HeaderSLOTTFT, "0.001", "Content-Type", "application/json")
	// Non-streaming: the e2e target is what counts.
	resp = e2.do(t, "POST", "/v1/chat/completions", `{"model":"llm","messages":[{"role":"user","content":"hi"}]}`,
		HeaderPriority, "sheddable", HeaderSLO, "0.001")
	if resp.StatusCode() != 429 || len(resp.Header.Peek("Retry-After")) == 0 {
		t.Fatalf("shed: %d %s", resp.StatusCode(), resp.Header.String())
	}
	mustErrBody(t, resp.Body())

	// The hard timeout: 504 with an OpenAI error body.
	blocked := &instant{block: true}
	e3 := newEnv(t, Config{}, blocked)
	resp = e3.do(t, "POST", "/v1/chat/completions", `{"model":"llm","messages":[{"role":"user","content":"hi"}]}`, HeaderTimeout, "20")
	if resp.StatusCode() != 504 {
		t.Fatalf("timeout: %d %s", resp.StatusCode(), resp.Body())
	}
	if eb := mustErrBody(t, resp.Body()); eb.Error.Type != "timeout_error" {
		t.Fatalf("timeout type %q", eb.Error.Type)
	}
}

func TestClassifyTable(t *testing.T) {
	cases := []struct {
		err  error
		http int
	}{
		{backends.BadRequestf("x", "bad"), 400},
		{backends.ErrContextLength, 400},
		{backends.ErrUnknownModel, 404},
		{backends.ErrShed, 429},
		{backends.ErrNoBackend, 503},
		{backends.ErrTimeout, 504},
		{backends.ErrUnavailable, 502},
		{&backends.UpstreamError{Status: 422, Message: "bad"}, 422},
		{&backends.UpstreamError{Status: 500, Message: "boom"}, 502},
		{errors.New("mystery"), 500},
	}
	for _, c := range cases {
		if got := Classify(c.err).HTTP; got != c.http {
			t.Errorf("%v: %d, want %d", c.err, got, c.http)
		}
	}
}
