package loadtest

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
)

func wlDrain(t *testing.T, src Source) []Item {
	t.Helper()
	var items []Item
	var it Item
	for src.Next(&it) {
		items = append(items, it)
	}
	return items
}

func TestTraceGoodFiles(t *testing.T) {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	var all [][]Item
	for _, path := range []string{"testdata/good.jsonl", "testdata/good.csv"} {
		src, err := OpenTrace(path)
		if err != nil {
			t.Fatal(err)
		}
		items := wlDrain(t, src)
		all = append(all, items)
		if len(items) != 6 {
			t.Fatalf("%s: %d items, want 6", path, len(items))
		}
		check := func(i int, cond bool, what string) {
			t.Helper()
			if !cond {
				t.Errorf("%s: item %d: %s: %+v", path, i, what, items[i])
			}
		}
		for i, it := range items {
			check(i, it.Seq == int64(i), "Seq")
		}
		it := items[0]
		check(0, it.At == 0 && it.Op == backends.OpChat && it.Model == ModelLLM && it.Stream && it.Priority == backends.Critical, "fields")
		check(0, it.SLO == backends.SLO{TTFT: ms(300), TPOT: ms(60)}, "standard SLO")
		check(0, it.SessionID == "a" && it.Turn == 1 && it.Site == "edge-a", "session, site")
		check(0, len(it.Messages) == 1 && wlPieces(it.Messages[0].Content) == 100 && it.InputTokens == 100 && it.OutputTokens == 20, "messages")

		it = items[1]
		check(1, it.At == 500*time.Millisecond && it.Op == backends.OpEmbedding && it.Model == ModelEmbeddings && it.Priority == backends.Standard, "fields")
		check(1, it.SLO == backends.SLO{E2E: ms(150)} && it.InputTokens == 64 && it.OutputTokens == 0, "SLO, tokens")
		check(1, len(it.Inputs) == 4 && wlPieces(it.Inputs[0]) == 16 && wlPieces(it.Inputs[3]) == 16, "inputs")

		it = items[2]
		check(2, it.Op == backends.OpTensor && it.Model == ModelVision && it.Images == 3 && it.Priority == backends.Sheddable && it.SLO == backends.SLO{E2E: ms(200)}, "tensor")

		it = items[3]
		check(3, it.At == 1250*time.Millisecond && it.Model == "llama-3.1-70b-instruct" && !it.Stream && it.Priority == backends.Standard, "fields")
		check(3, it.SLO == backends.SLO{E2E: ms(2500)}, "explicit SLO")
		check(3, it.SessionID == "a" && it.Turn == 2 && it.InputTokens == 150 && it.OutputTokens == 10, "session turn 2")
		if check(3, len(it.Messages) == 3, "3 messages"); len(it.Messages) == 3 {
			check(3, it.Messages[0] == items[0].Messages[0], "shared prefix")
			check(3, it.Messages[1].Role == "assistant" && wlPieces(it.Messages[1].Content) == 20, "assistant reply of the previous output")
			check(3, it.Messages[2].Role == "user" && wlPieces(it.Messages[2].Content) == 30, "new user message")
		}

		it = items[4]
		check(4, it.Op == backends.OpCompletion && wlPieces(it.Prompt) == 32 && it.OutputTokens == 8 && !it.Stream, "completion")
		check(4, it.SLO == backends.SLO{TTFT: ms(200), TPOT: ms(25.5)}, "explicit SLO without e2e")

		it = items[5]
		check(5, it.At == 3*time.Second+1 && it.Images == 1 && it.SLO == backends.SLO{E2E: ms(50)}, "default tensor")
	}
	if !reflect.DeepEqual(all[0], all[1]) {
		t.Errorf("good.jsonl and good.csv replay differently")
	}
	// Detection from the content.
	for _, path := range []string{"testdata/good.jsonl", "testdata/good.csv"} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		src, err := ParseTrace(bytes.NewReader(b), "")
		if err != nil {
			t.Fatalf("%s, detected: %v", path, err)
		}
		if items := wlDrain(t, src); !reflect.DeepEqual(items, all[0]) {
			t.Errorf("%s, detected: replays differently", path)
		}
	}
}

func TestTraceBadFile(t *testing.T) {
	_, err := OpenTrace("testdata/bad.csv")
	const want = `testdata/bad.csv:17: output_tokens: "abc" is not an integer`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
	if _, err := OpenTrace("testdata/missing.csv"); err == nil {
		t.Errorf("missing file: no error")
	}
}

func TestTraceBadRows(t *testing.T) {
	const hdr = "timestamp_s,type,input_tokens,output_tokens,stream,priority\n"
	for _, tc := range []struct {
		format, in, want string
	}{
		{"csv", hdr + "0,chat,10,5,true,standard\n0,chat,10,abc,true,standard\n", `line 3: output_tokens: "abc" is not an integer`},
		{"csv", hdr + "0,video,10,5,true,standard\n", `line 2: type: "video" is not chat, completion, embedding or tensor`},
		{"csv", hdr + "2,chat,10,5,true,standard\n1.5,chat,10,5,true,standard\n", `line 3: timestamp_s: 1.5 is before the previous row's 2 (rows must be in time order)`},
		{"csv", hdr + "x,chat,10,5,true,standard\n", `line 2: timestamp_s: "x" is not a number`},
		{"csv", hdr + "-1,chat,10,5,true,standard\n", `line 2: timestamp_s: -1 is out of range (0 to 10⁹ s)`},
		{"csv", hdr + ",chat,10,5,true,standard\n", `line 2: timestamp_s: missing (every row needs one)`},
		{"csv", hdr + "0,chat,10,5,true,urgent\n", `line 2: priority: unknown priority "urgent" (want critical, standard or sheddable)`},
		{"csv", hdr + "0,chat,10,5,yes,standard\n", `line 2: stream: "yes" is not true or false`},
		{"csv", hdr + "0,embedding,10,,true,standard\n", `line 2: stream: embedding rows cannot stream`},
		{"csv", hdr + "0,chat,-3,5,true,standard\n", `line 2: input_tokens: -3 is negative`},
		{"csv", hdr + "0,chat,,5,true,standard\n", `line 2: input_tokens: missing or 0 (required ≥ 1 for chat rows)`},
		{"csv", hdr + "0,completion,5,,true,standard\n", `line 2: output_tokens: missing or 0 (required ≥ 1 for completion rows)`},
		{"csv", hdr + "0,chat,10,5,true\n", `line 2: wrong number of fields`},
		{"csv", "# comment\ntimestamp_s,type,input_token\n", `line 2: unknown column "input_token" (want timestamp_s, type, model, input_tokens, output_tokens, stream, slo_ms, slo_ttft_ms, slo_tpot_ms, priority, session_id, site, inputs, images)`},
		{"csv", "timestamp_s,input_tokens\n", `line 1: missing column "type"`},
		{"csv", "timestamp_s,type,type\n", `line 1: column "type" appears twice`},
		{"csv", "", `line 1: empty trace: want a header row naming the columns (timestamp_s, type, model, input_tokens, output_tokens, stream, slo_ms, slo_ttft_ms, slo_tpot_ms, priority, session_id, site, inputs, images)`},
		{"csv", "timestamp_s,type,slo_ms\n0,tensor,fast\n", `line 2: slo_ms: "fast" is not a number`},
		{"csv", "timestamp_s,type,input_tokens,inputs\n0,embedding,3,4\n", `line 2: inputs: 4 inputs cannot share 3 input tokens`},
		{"csv", "timestamp_s,type,images\n0,tensor,0\n", `line 2: images: must be ≥ 1`},
		{"jsonl", `{"timestamp_s": 0, "type": "tensor"}` + "\n\n" + `{"timestamp_s": 1, "type": "chat", "input_tokens": 5, "output_tokens": "abc"}`, `line 3: output_tokens: "abc" is not an integer`},
		{"jsonl", `{"timestamp_s": 1, "type": "chat", "input_tokens": 5.5, "output_tokens": 5}`, `line 1: input_tokens: "5.5" is not an integer`},
		{"jsonl", `{"timestamp_s": "x", "type": "tensor"}`, `line 1: timestamp_s: "x" is not a number`},
		{"jsonl", `{"timestamp_s": 0, "type": "tensor", "colour": "red"}`, `line 1: unknown column "colour" (want timestamp_s, type, model, input_tokens, output_tokens, stream, slo_ms, slo_ttft_ms, slo_tpot_ms, priority, session_id, site, inputs, images)`},
		{"jsonl", `{"timestamp_s": 0, "type": ["tensor"]}`, `line 1: type: ["tensor"] is not a single value`},
		{"jsonl", `{"timestamp_s": 0, "type": "tensor"}` + "\n[1, 2]\n", `line 2: not a JSON object: json: cannot unmarshal array into Go value of type map[string]json.RawMessage`},
		{"jsonl", `{"type": "tensor"}`, `line 1: timestamp_s: missing (every row needs one)`},
		{"jsonl", `{"timestamp_s": 0}`, `line 1: type: missing (want chat, completion, embedding or tensor)`},
		{"xml", "<trace/>", `unknown trace format "xml" (want jsonl or csv)`},
	} {
		_, err := ParseTrace(strings.NewReader(tc.in), tc.format)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s %q:\n got %v\nwant %s", tc.format, tc.in, err, tc.want)
		}
	}
}

func TestTraceLenientValues(t *testing.T) {
	in := `{"timestamp_s": 0, "type": "chat", "input_tokens": "12", "output_tokens": 3e0, "stream": "true"}` + "\n" +
		`{"timestamp_s": 0.25, "type": "chat", "input_tokens": 40, "output_tokens": 2, "session_id": "s", "slo_ms": null}` + "\n" +
		`{"timestamp_s": 0.5, "type": "chat", "input_tokens": 5, "output_tokens": 2, "session_id": "s"}` + "\n"
	src, err := ParseTrace(strings.NewReader(in), "jsonl")
	if err != nil {
		t.Fatal(err)
	}
	items := wlDrain(t, src)
	if it := items[0]; it.InputTokens != 12 || it.OutputTokens != 3 || !it.Stream {
		t.Errorf("item 0: %+v", it)
	}
	// A session turn whose input_tokens does not cover the conversation so
	// far gets a 1-token user message.
	if it := items[2]; it.Turn != 2 || len(it.Messages) != 3 || it.InputTokens != 40+2+1 {
		t.Errorf("item 2: turn %d, %d messages, %d input tokens", it.Turn, len(it.Messages), it.InputTokens)
	}
}

func TestTraceRoundTrip(t *testing.T) {
	const n = 20_000
	orig := wlCollect(t, "mixed", 7, n)
	src, _ := Standard("mixed", 100, 7, Limit{})
	var buf bytes.Buffer
	if err := WriteTraceJSONL(&buf, src, n); err != nil {
		t.Fatal(err)
	}
	if lines := bytes.Count(buf.Bytes(), []byte("\n")); lines != n {
		t.Fatalf("%d lines, want %d", lines, n)
	}
	replay, err := ParseTrace(&buf, "jsonl")
	if err != nil {
		t.Fatal(err)
	}
	got := wlDrain(t, replay)
	if len(got) != n {
		t.Fatalf("%d items replayed, want %d", len(got), n)
	}
	shape := func(ms []backends.Message) []string {
		var s []string
		for _, m := range ms {
			s = append(s, m.Role+":"+strings.Repeat("x", wlPieces(m.Content)))
		}
		return s
	}
	sessions := 0
	for i := range orig {
		a, b := orig[i], got[i]
		if !reflect.DeepEqual(shape(a.Messages), shape(b.Messages)) {
			t.Fatalf("item %d: messages differ in shape", i)
		}
		if len(a.Inputs) != len(b.Inputs) {
			t.Fatalf("item %d: %d inputs, replayed %d", i, len(a.Inputs), len(b.Inputs))
		}
		if a.SessionID != "" {
			sessions++
		}
		a.Messages, b.Messages, a.Inputs, b.Inputs = nil, nil, nil, nil
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("item %d:\n wrote %+v\nreplay %+v", i, a, b)
		}
	}
	if sessions == 0 {
		t.Errorf("no session turns in the round trip")
	}
	// A limited source ends the trace early; n ≤ 0 writes all.
	buf.Reset()
	src, _ = Standard("vision", 100, 1, Limit{Requests: 7})
	if err := WriteTraceJSONL(&buf, src, 0); err != nil {
		t.Fatal(err)
	}
	if lines := bytes.Count(buf.Bytes(), []byte("\n")); lines != 7 {
		t.Errorf("%d lines, want 7", lines)
	}
}

func TestAppendFixed(t *testing.T) {
	for _, tc := range []struct {
		v, unit int64
		want    string
	}{
		{0, 1e9, "0"}, {1, 1e9, "0.000000001"}, {1_500_000_000, 1e9, "1.5"}, {-2_000_000, 1e6, "-2"}, {25_500_000, 1e6, "25.5"},
	} {
		if got := string(appendFixed(nil, tc.v, tc.unit)); got != tc.want {
			t.Errorf("appendFixed(%d, %d) = %q, want %q", tc.v, tc.unit, got, tc.want)
		}
	}
	if got := string(appendTraceString(nil, "a\"b\\c\n\x01é")); got != `"a\"b\\c\u000a\u0001é"` {
		t.Errorf("appendTraceString = %s", got)
	}
}
