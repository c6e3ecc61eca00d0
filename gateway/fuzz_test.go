package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/router"
)

// Native fuzz tests for everything that reads client bytes. Without -fuzz,
// `go test` runs only the seeds below (that is what CI does); to fuzz one:
//
//	go test -run='^$' -fuzz=FuzzDecodeChat -fuzztime=30s ./gateway/

// llmSeeds are chat and completions bodies: valid ones, every field with a
// wrong type, nulls, huge numbers, nested content parts, unicode, deep
// nesting, and bodies that are not objects at all.
var llmSeeds = []string{
	// Valid.
	`{"model":"llm","messages":[{"role":"user","content":"hi"}]}`,
	`{"model":"llm","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"},{"role":"assistant","content":null},{"role":"tool","content":"42"}],"max_tokens":5,"n":3,"stop":["\n","END"],"seed":-7,"temperature":1.5}`,
	`{"model":"llm","messages":[{"role":"user","content":[{"type":"text","text":"look at "},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},{"type":"text","text":"this"}]}]}`,
	`{"model":"llm","messages":[{"role":"developer","content":[]}],"stream":true,"stream_options":{"include_usage":true}}`,
	`{"model":"llm","prompt":"once upon a time","max_tokens":16,"stop":"."}`,
	`{"model":"llm","prompt":["a","b","c"],"n":2,"max_completion_tokens":1}`,
	`{"model":"llm","prompt":"x","messages":[{"role":"user","content":"x"}],"logit_bias":{"1":2},"user":"u"}`,
	"  \n\t{\"model\":\"llm\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}\n\n ",
	// Unicode, escapes and invalid UTF-8.
	`{"model":"llm","messages":[{"role":"user","content":"héllo 世界 🦀 \u2028\u2029 \ud83e\udd80 \ud800 \u0000\"\\"}]}`,
	"{\"model\":\"ll\xffm\",\"messages\":[{\"role\":\"user\",\"content\":\"\xc3\x28\xed\xa0\x80\"}]}",
	`{"model":"\u006c\u006c\u006d","messages":[{"role":"\u0075ser","content":"x"}]}`,
	// Limits and huge numbers.
	`{"model":"llm","messages":[{"role":"user","content":"x"}],"max_tokens":0}`,
	`{"model":"llm","messages":[{"role":"user","content":"x"}],"max_tokens":1048576,"n":128}`,
	`{"model":"llm","messages":[{"role":"user","content":"x"}],"max_tokens":1048577,"n":129}`,
	`{"model":"llm","messages":[{"role":"user","content":"x"}],"max_tokens":-1,"n":-1}`,
	`{"model":"llm","messages":[{"role":"user","content":"x"}],"max_tokens":99999999999999999999999,"n":1e400}`,
	`{"model":"llm","messages":[{"role":"user","content":"x"}],"max_tokens":1.5,"n":2.0}`,
	`{"model":"llm","messages":[{"role":"user","content":"x"}],"max_tokens":1e3}`,
	`{"model":"llm","messages":[{"role":"user","content":"x"}],"seed":9223372036854775807,"temperature":2}`,
	`{"model":"llm","messages":[{"role":"user","content":"x"}],"seed":9223372036854775808,"temperature":2.0000001}`,
	`{"model":"llm","messages":[{"role":"user","content":"x"}],"temperature":-0,"seed":-9223372036854775808}`,
	`{"model":"llm","messages":[{"role":"user","content":"x"}],"temperature":1e309}`,
	`{"model":"llm","messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]}`,
	`{"model":"llm","messages":[{"role":"user","content":"x"}],"stop":[""]}`,
	`{"model":"llm","messages":[{"role":"user","content":"x"}],"stop":[]}`,
	`{"model":"llm","prompt":[]}`,
	// Nulls.
	`{"model":null,"messages":null}`,
	`{"model":"llm","messages":[null]}`,
	`{"model":"llm","messages":[{"role":"user","content":"x"}],"max_tokens":null,"n":null,"stop":null,"stream":null,"stream_options":null,"seed":null,"temperature":null}`,
	`{"model":"llm","prompt":null}`,
	`null`,
	// Wrong types: arrays for strings, strings for numbers, objects for arrays.
	`{"model":["llm"],"messages":[{"role":"user","content":"x"}]}`,
	`{"model":"llm","messages":{"role":"user","content":"x"}}`,
	`{"model":"llm","messages":[{"role":["user"],"content":"x"}]}`,
	`{"model":"llm","messages":[{"role":"user","content":42}]}`,
	`{"model":"llm","messages":[{"role":"user","content":{"type":"text","text":"x"}}]}`,
	`{"model":"llm","messages":[{"role":"user","content":[{"type":"text","text":["x"]}]}]}`,
	`{"model":"llm","messages":[{"role":"user","content":[["nested"],[[["deeper"]]]]}]}`,
	`{"model":"llm","messages":[{"role":"user","content":["plain string part"]}]}`,
	`{"model":"llm","messages":[{"role":"user","content":"x"}],"max_tokens":"ten","n":true}`,
	`{"model":"llm","messages":[{"role":"user","content":"x"}],"stream":"yes","stream_options":{"include_usage":1}}`,
	`{"model":"llm","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}`,
	`{"model":"llm","messages":[{"role":"user","content":"x"}],"stop":[1,2]}`,
	`{"model":"llm","prompt":[[1,2,3]]}`,
	`{"model":"llm","prompt":123}`,
	`{"model":"llm","prompt":{"text":"x"}}`,
	`{"model":"llm","messages":[{"role":"robot","content":"x"}]}`,
	`{"model":"llm","messages":[{"content":"x"}]}`,
	// Deep nesting (encoding/json caps it at 10000 levels).
	`{"model":"llm","messages":[{"role":"user","content":"x"}],"extra":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`,
	`{"model":"llm","messages":[{"role":"user","content":"x"}],"extra":` + strings.Repeat(`{"a":`, 200) + `1` + strings.Repeat("}", 200) + `}`,
	strings.Repeat("[", 20000),
	// Not JSON objects, truncated, trailing data.
	``, ` `, `{}`, `[]`, `[1,2]`, `"string"`, `42`, `true`, `{`, `{"model":`, `{"model":"llm"`,
	`{"model":"llm","messages":[{"role":"user","content":"x"}]} {"again":1}`,
	`{"model":"llm","messages":[{"role":"user","content":"x"}]}garbage`,
	`{"model":"llm","messages":[{"role":"user","content":"x"},]}`,
	`{'model':'llm'}`,
	"\xef\xbb\xbf{\"model\":\"llm\"}",
	`{"model":"llm","model":"other","messages":[{"role":"user","content":"x"}]}`,
	`{"MODEL":"llm","Messages":[{"Role":"user","Content":"x"}]}`,
}

func checkDecodeError(t *testing.T, err error, body []byte) {
	t.Helper()
	if !errors.Is(err, backends.ErrBadRequest) {
		t.Fatalf("error %q (%T) does not wrap ErrBadRequest; body %q", err, err, body)
	}
	if strings.TrimSpace(err.Error()) == "" || strings.TrimSpace(strings.TrimPrefix(err.Error(), backends.ErrBadRequest.Error()+":")) == "" {
		t.Fatalf("error without a message %q; body %q", err, body)
	}
	if Classify(err).HTTP != 400 {
		t.Fatalf("decode error %q classifies as %d, want 400", err, Classify(err).HTTP)
	}
}

func checkLLMRequest(t *testing.T, op backends.Op, req *backends.Request, body []byte) {
	t.Helper()
	fail := func(format string, a ...any) {
		t.Helper()
		t.Fatalf("body %q decoded to %+v: "+format, append([]any{body, req}, a...)...)
	}
	if req.Op != op {
		fail("op %v, want %v", req.Op, op)
	}
	if req.Model == "" {
		fail("empty model")
	}
	if req.N < 1 || req.N > maxN {
		fail("n %d outside [1, %d]", req.N, maxN)
	}
	if req.MaxTokens < 0 || req.MaxTokens > maxMaxTokens {
		fail("max_tokens %d outside [0, %d]", req.MaxTokens, maxMaxTokens)
	}
	if req.Rows < 1 || req.Rows != req.Sequences() {
		fail("rows %d, sequences %d", req.Rows, req.Sequences())
	}
	if req.EstInputTokens < 0 {
		fail("negative token estimate")
	}
	if len(req.Stop) > maxStop {
		fail("%d stop sequences", len(req.Stop))
	}
	for _, s := range req.Stop {
		if s == "" {
			fail("empty stop sequence")
		}
	}
	if req.Temperature < 0 || req.Temperature > 2 {
		fail("temperature %v", req.Temperature)
	}
	if req.IncludeUsage && !req.Stream {
		fail("include_usage without stream")
	}
	switch op {
	case backends.OpChat:
		if len(req.Messages) == 0 {
			fail("no messages")
		}
		for i, m := range req.Messages {
			if m.Role == "" {
				fail("messages[%d] has no role", i)
			}
		}
	case backends.OpCompletion:
		if len(req.Prompts) == 0 || len(req.Prompts) > maxInputs {
			fail("%d prompts", len(req.Prompts))
		}
		if req.Rows != len(req.Prompts)*req.N {
			fail("rows %d != prompts %d × n %d", req.Rows, len(req.Prompts), req.N)
		}
	}
}

func fuzzDecodeLLM(f *testing.F, op backends.Op) {
	for _, s := range llmSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := bytes.Clone(body)
		var req backends.Request
		err := decodeLLM(op, body, &req)
		if !bytes.Equal(body, orig) {
			t.Fatalf("decodeLLM modified its input")
		}
		if err != nil {
			checkDecodeError(t, err, body)
			return
		}
		if !json.Valid(body) {
			t.Fatalf("invalid JSON accepted: %q", body)
		}
		checkLLMRequest(t, op, &req, body)
		// The request owns its memory: scribbling over the body (as fasthttp
		// does when it reuses its buffer) must not change what was decoded.
		before := req.Model + "\x00" + strings.Join(req.Prompts, "\x00") + "\x00" + strings.Join(req.Stop, "\x00")
		for _, m := range req.Messages {
			before += "\x00" + m.Role + "\x00" + m.Content
		}
		for i := range body {
			body[i] = 'Z'
		}
		after := req.Model + "\x00" + strings.Join(req.Prompts, "\x00") + "\x00" + strings.Join(req.Stop, "\x00")
		for _, m := range req.Messages {
			after += "\x00" + m.Role + "\x00" + m.Content
		}
		if before != after {
			t.Fatalf("decoded request aliases the body buffer: %q became %q", before, after)
		}
	})
}

func FuzzDecodeChat(f *testing.F) { fuzzDecodeLLM(f, backends.OpChat) }

func FuzzDecodeCompletion(f *testing.F) { fuzzDecodeLLM(f, backends.OpCompletion) }

var embeddingSeeds = []string{
	`{"model":"emb","input":"hello"}`,
	`{"model":"emb","input":["a","b","c"],"encoding_format":"float"}`,
	`{"model":"emb","input":"x","encoding_format":"base64","dimensions":8,"user":"u"}`,
	`{"model":"emb","input":["héllo","世界","🦀","\u2028","\ud800"]}`,
	"{\"model\":\"emb\",\"input\":\"\xff\xfe\"}",
	`{"model":"emb","input":""}`,
	`{"model":"emb","input":["a",""]}`,
	`{"model":"emb","input":[]}`,
	`{"model":"emb","input":null}`,
	`{"model":"emb"}`,
	`{"input":"x"}`,
	`{"model":"","input":"x"}`,
	`{"model":"emb","input":[1,2,3]}`,
	`{"model":"emb","input":[[1,2],[3]]}`,
	`{"model":"emb","input":[null]}`,
	`{"model":"emb","input":["a",null]}`,
	`{"model":"emb","input":42}`,
	`{"model":"emb","input":{"text":"x"}}`,
	`{"model":"emb","input":true}`,
	`{"model":"emb","input":"x","encoding_format":"binary"}`,
	`{"model":"emb","input":"x","encoding_format":null}`,
	`{"model":"emb","input":"x","encoding_format":["float"]}`,
	`{"model":["emb"],"input":"x"}`,
	`{"model":"emb","input":[` + strings.Repeat(`"x",`, maxInputs) + `"x"]}`,
	`{"model":"emb","input":"x","extra":` + strings.Repeat("[", 300) + strings.Repeat("]", 300) + `}`,
	``, `null`, `[]`, `"x"`, `{`, `{"model":"emb","input":"x"}}`, `{"model":"emb","input":"x"} x`,
}

func FuzzDecodeEmbedding(f *testing.F) {
	for _, s := range embeddingSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req backends.Request
		b64, err := decodeEmbedding(body, &req)
		if err != nil {
			checkDecodeError(t, err, body)
			if b64 {
				t.Fatalf("base64 reported with an error")
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("invalid JSON accepted: %q", body)
		}
		if req.Op != backends.OpEmbedding || req.Model == "" {
			t.Fatalf("body %q: op %v model %q", body, req.Op, req.Model)
		}
		if req.Rows < 1 || len(req.Inputs) != req.Rows || len(req.Inputs) > maxInputs {
			t.Fatalf("body %q: rows %d, %d inputs", body, req.Rows, len(req.Inputs))
		}
		for i, s := range req.Inputs {
			if s == "" {
				t.Fatalf("body %q: input %d is empty", body, i)
			}
		}
		if req.EstInputTokens < 1 {
			t.Fatalf("body %q: token estimate %d for non-empty inputs", body, req.EstInputTokens)
		}
		if req.MaxTokens != 0 || req.N != 0 || len(req.Messages) != 0 {
			t.Fatalf("body %q: LLM fields set on an embedding request: %+v", body, req)
		}
	})
}

// fuzzServer is one gateway over an in-memory listener, shared by every
// iteration of FuzzHandleChat (newEnv ties its server to one *testing.T).
type fuzzServer struct {
	be *instant
	c  *fasthttp.Client
}

// fuzzMaxBody is the fuzz server's body limit.
const fuzzMaxBody = 64 << 10

func newFuzzServer(f *testing.F) *fuzzServer {
	be := &instant{desc: &backends.Descriptor{Name: "b0", Profile: testProfile("test-gpu", 3.6), Models: []string{"llm", "emb"}, PricePerHour: 3.6}}
	d, err := NewDispatcher([]backends.Backend{be}, testModels(), router.Config{}, backends.RealClock)
	if err != nil {
		f.Fatal(err)
	}
	return &fuzzServer{be: be, c: serveInmemory(f, Config{MaxBodyBytes: fuzzMaxBody}, d, backends.RealClock).c}
}

var fuzzPaths = [...]string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings"}

// FuzzHandleChat sends arbitrary bodies through the whole HTTP front: to the
// chat endpoint, or to completions or embeddings (path % 3). Whatever
// the body, the answer is 200 or a 4xx, never a 5xx; every error is an OpenAI
// error object; every 200 is valid JSON or a well-formed event stream.
func FuzzHandleChat(f *testing.F) {
	for _, s := range llmSeeds {
		f.Add(s, uint8(0))
	}
	for _, s := range []string{
		`{"model":"llm","prompt":["a","b"],"n":2,"stream":true,"stream_options":{"include_usage":true}}`,
		`{"model":"llm","prompt":"x","max_tokens":3}`,
		`{"model":"emb","prompt":"x"}`,
	} {
		f.Add(s, uint8(1))
	}
	for _, s := range embeddingSeeds {
		f.Add(s, uint8(2))
	}
	f.Add(`{"model":"emb","messages":[{"role":"user","content":"x"}]}`, uint8(0))
	f.Add(`{"model":"nope","messages":[{"role":"user","content":"x"}]}`, uint8(0))
	f.Add(`{"model":"llm","messages":[{"role":"user","content":"x"}],"stream":true,"n":128,"max_tokens":1048576}`, uint8(0))
	f.Add(`{"model":"llm","input":"x"}`, uint8(2))
	f.Add(`{"model":"emb","messages":[{"role":"user","content":"x"}],"x":"`+strings.Repeat("a", 70<<10)+`"}`, uint8(0))

	srv := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, body string, path uint8) {
		req := fasthttp.AcquireRequest()
		defer fasthttp.ReleaseRequest(req)
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(resp)
		p := fuzzPaths[int(path)%len(fuzzPaths)]
		req.SetRequestURI("http://gw" + p)
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetContentType("application/json")
		req.SetBodyString(body)
		if err := srv.c.DoTimeout(req, resp, 10*time.Second); err != nil {
			if len(body) > fuzzMaxBody {
				// fasthttp answers 413 and closes the connection while the
				// client may still be writing the body; over an in-memory
				// pipe the client then sees the close instead of the 413.
				// TestErrors and the SDK integration test check the 413.
				return
			}
			t.Fatalf("POST %s %q: %v", p, body, err)
		}
		st := resp.StatusCode()
		rb := resp.Body()
		if st != 200 {
			if st < 400 || st > 499 {
				t.Fatalf("POST %s %q: status %d: %s", p, body, st, rb)
			}
			checkErrorJSON(t, rb, p, body)
			return
		}
		switch ct := string(resp.Header.ContentType()); ct {
		case "application/json":
			if !json.Valid(rb) || !utf8.Valid(rb) {
				t.Fatalf("POST %s %q: invalid JSON response: %q", p, body, rb)
			}
			if string(resp.Header.Peek(HeaderBackend)) != "b0" || len(resp.Header.Peek(HeaderCost)) == 0 {
				t.Fatalf("POST %s %q: placement or cost header missing: %s", p, body, resp.Header.String())
			}
		case "text/event-stream":
			events := strings.Split(strings.TrimSuffix(string(rb), "\n\n"), "\n\n")
			if len(events) < 2 || events[len(events)-1] != "data: [DONE]" {
				t.Fatalf("POST %s %q: stream does not end with [DONE]: %q", p, body, rb)
			}
			for _, ev := range events[:len(events)-1] {
				payload, ok := strings.CutPrefix(ev, "data: ")
				if !ok || !json.Valid([]byte(payload)) || !utf8.ValidString(payload) {
					t.Fatalf("POST %s %q: bad event %q", p, body, ev)
				}
				if strings.HasPrefix(payload, `{"error":`) {
					t.Fatalf("POST %s %q: stream failed: %s", p, body, payload)
				}
			}
		default:
			t.Fatalf("POST %s %q: 200 with content type %q", p, body, ct)
		}
	})
}

func checkErrorJSON(t *testing.T, rb []byte, p, body string) {
	t.Helper()
	var e struct {
		Error *struct {
			Message *string `json:"message"`
			Type    *string `json:"type"`
			Param   *string `json:"param"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	if !utf8.Valid(rb) {
		t.Fatalf("POST %s %q: error body is not UTF-8: %q", p, body, rb)
	}
	if err := json.Unmarshal(rb, &e); err != nil || e.Error == nil || e.Error.Message == nil || *e.Error.Message == "" || e.Error.Type == nil || *e.Error.Type == "" {
		t.Fatalf("POST %s %q: not an OpenAI error body: %q (%v)", p, body, rb, err)
	}
}

// FuzzBatchKey: batchKey never panics on any bytes, and for a body that is a
// JSON object it is itself a JSON object that does not depend on the body's
// whitespace (the body indented gives the same key) and holds neither the
// skipped member nor a default encoding_format.
func FuzzBatchKey(f *testing.F) {
	for _, s := range append(append([]string{}, llmSeeds...),
		`{"model":"m","input":["a","b"],"encoding_format":"float","dimensions":256}`,
		`{ "user" : "u \" }{ ] \\" , "input" : { "nested" : [ 1 , { "x" : "}" } ] } }`,
		`{"a":1,"a":2,"in\u0070ut":"x"}`, `{}`, `[]`, `{"a":`, `"str"`) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		key := batchKey(body, "input", true)
		var obj map[string]json.RawMessage
		if json.Unmarshal(body, &obj) != nil || obj == nil {
			return // not an object ("null" unmarshals into a nil map)
		}
		if !json.Valid([]byte(key)) || !strings.HasPrefix(key, "{") {
			t.Fatalf("key %q of %q is not a JSON object", key, body)
		}
		var indented bytes.Buffer
		if json.Indent(&indented, body, " ", "\t") != nil {
			t.Fatal("indent failed on a valid body")
		}
		if k2 := batchKey(indented.Bytes(), "input", true); k2 != key {
			t.Fatalf("key %q of %q, but %q indented", key, body, k2)
		}
		var members map[string]json.RawMessage
		if err := json.Unmarshal([]byte(key), &members); err != nil {
			t.Fatalf("key %q: %v", key, err)
		}
		if _, ok := members["input"]; ok { // however the body spells it
			t.Fatalf("key %q of %q holds the skipped member", key, body)
		}
		if v, ok := members["encoding_format"]; ok && string(v) == `"float"` {
			t.Fatalf("key %q holds the default encoding_format", key)
		}
	})
}
