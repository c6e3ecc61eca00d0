package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/accelgate/accelgate/backends"
)

// Request headers a client may send to set its class, targets and timeout.
const (
	HeaderSLO       = "x-accelgate-slo-ms"      // end-to-end target, non-streaming
	HeaderSLOTTFT   = "x-accelgate-slo-ttft-ms" // time-to-first-token target, streams
	HeaderSLOTPOT   = "x-accelgate-slo-tpot-ms" // time-per-output-token target, streams
	HeaderPriority  = "x-accelgate-priority"    // critical | standard | sheddable
	HeaderTimeout   = "x-accelgate-timeout-ms"  // hard timeout, shortens the model's
	HeaderSite      = "x-accelgate-site"        // where the data comes from: prefer a backend there
	HeaderBackend   = "x-accelgate-backend"     // response: where the request ran
	HeaderHardware  = "x-accelgate-hardware"    // response: the backend's hardware profile
	HeaderCost      = "x-accelgate-cost-usd"    // response: attributed cost
	HeaderRequestID = "x-request-id"            // response: the request's id
)

// Limits on what one request may ask for.
const (
	maxN         = 128
	maxStop      = 4
	maxInputs    = 2048
	maxMaxTokens = 1 << 20
	maxSiteLen   = 256 // bytes of x-accelgate-site
)

type chatMessage struct {
	Role    string         `json:"role"`
	Content messageContent `json:"content"`
}

// messageContent is a chat message's content flattened to text while the
// request is decoded (one pass): a string, an array of content parts (the
// text parts joined; other parts are ignored by the emulator and passed
// through to upstreams in the raw body), or null.
type messageContent struct {
	text string
	err  error
}

// UnmarshalJSON implements json.Unmarshaler. A malformed content is kept as
// an error, reported with the message's index by decodeLLM.
func (c *messageContent) UnmarshalJSON(data []byte) error {
	if len(data) >= 2 && data[0] == '"' && bytes.IndexByte(data, '\\') < 0 && utf8.Valid(data) {
		c.text = string(data[1 : len(data)-1]) // no escapes: the bytes are the text
		return nil
	}
	c.text, c.err = messageText(data)
	return nil
}

type contentPart struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// llmRequest holds the fields of chat and completions requests the gateway
// models; every other field stays in the raw body for upstreams.
type llmRequest struct {
	Model               string          `json:"model"`
	Messages            []chatMessage   `json:"messages"`
	Prompt              json.RawMessage `json:"prompt"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	N                   *int            `json:"n"`
	Stop                json.RawMessage `json:"stop"`
	Stream              *bool           `json:"stream"`
	StreamOptions       *streamOptions  `json:"stream_options"`
	Seed                *int64          `json:"seed"`
	Temperature         *float64        `json:"temperature"`
}

type embeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
}

// decodeJSON decodes body into v, turning decoder errors into 400s that name
// the field.
func decodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return backends.BadRequestf("", "the request body is empty; send a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			field := te.Field
			if field == "" {
				return backends.BadRequestf("", "the request body must be a JSON object, not %s", te.Value)
			}
			return backends.BadRequestf(field, "invalid type for %q: expected %s, got %s", field, jsonType(te.Type.Kind().String()), te.Value)
		case errors.As(err, &se):
			return backends.BadRequestf("", "malformed JSON at byte %d: %v", se.Offset, err)
		}
		return backends.BadRequestf("", "malformed JSON: %v", err)
	}
	return nil
}

func jsonType(kind string) string {
	switch kind {
	case "int", "int64", "int32", "uint", "uint64":
		return "an integer"
	case "float64", "float32":
		return "a number"
	case "bool":
		return "a boolean"
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	}
	return kind
}

// decodeLLM builds a canonical request from a chat (op = OpChat) or
// completions body.
func decodeLLM(op backends.Op, body []byte, req *backends.Request) error {
	var in llmRequest
	if err := decodeJSON(body, &in); err != nil {
		return err
	}
	if in.Model == "" {
		return backends.BadRequestf("model", "you must provide a model parameter")
	}
	req.Op, req.Model = op, in.Model
	est := 0
	if op == backends.OpChat {
		if len(in.Messages) == 0 {
			return backends.BadRequestf("messages", "'messages' must be a non-empty array")
		}
		req.Messages = make([]backends.Message, len(in.Messages))
		for i, m := range in.Messages {
			switch m.Role {
			case "system", "user", "assistant", "tool", "developer", "function":
			case "":
				return backends.BadRequestf(fmt.Sprintf("messages[%d].role", i), "missing role")
			default:
				return backends.BadRequestf(fmt.Sprintf("messages[%d].role", i), "unknown role %q", m.Role)
			}
			text, err := m.Content.text, m.Content.err
			if err != nil {
				return backends.BadRequestf(fmt.Sprintf("messages[%d].content", i), "%v", err)
			}
			req.Messages[i] = backends.Message{Role: m.Role, Content: text}
			est += len(text) + 4*4
		}
	} else {
		prompts, err := promptList(in.Prompt)
		if err != nil {
			return backends.BadRequestf("prompt", "%v", err)
		}
		req.Prompts = prompts
		for _, p := range prompts {
			est += len(p)
		}
	}
	req.EstInputTokens = (est + 3) / 4
	switch {
	case req.Messages != nil:
		req.Prefix.SetMessages(req.Model, req.Messages, req.EstInputTokens)
	case len(req.Prompts) == 1:
		req.Prefix.SetText(req.Model, req.Prompts[0], req.EstInputTokens)
	}
	mt := in.MaxTokens
	if in.MaxCompletionTokens != nil {
		mt = in.MaxCompletionTokens
	}
	if mt != nil {
		if *mt < 1 || *mt > maxMaxTokens {
			return backends.BadRequestf("max_tokens", "max_tokens must be between 1 and %d, got %d", maxMaxTokens, *mt)
		}
		req.MaxTokens = *mt
	}
	req.N = 1
	if in.N != nil {
		if *in.N < 1 || *in.N > maxN {
			return backends.BadRequestf("n", "n must be between 1 and %d, got %d", maxN, *in.N)
		}
		req.N = *in.N
	}
	stop, err := stopList(in.Stop)
	if err != nil {
		return backends.BadRequestf("stop", "%v", err)
	}
	req.Stop = stop
	if in.Stream != nil {
		req.Stream = *in.Stream
	}
	if in.StreamOptions != nil {
		if !req.Stream {
			return backends.BadRequestf("stream_options", "stream_options is only allowed when stream is true")
		}
		req.IncludeUsage = in.StreamOptions.IncludeUsage
	}
	if in.Seed != nil {
		req.Seed = *in.Seed
	}
	if in.Temperature != nil {
		if *in.Temperature < 0 || *in.Temperature > 2 {
			return backends.BadRequestf("temperature", "temperature must be between 0 and 2, got %v", *in.Temperature)
		}
		req.Temperature = *in.Temperature
	}
	req.Rows = req.Sequences()
	if op == backends.OpCompletion && !req.Stream {
		// A candidate for merging into a prompt-array call (batching.go).
		req.BatchKey = batchKey(body, "prompt", false)
	}
	return nil
}

// messageText flattens a message's content: a string, an array of parts
// (the text parts are joined; other parts are ignored by the emulator and
// passed through to upstreams), or null.
func messageText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("invalid string: %v", err)
		}
		return s, nil
	case '[':
		var parts []contentPart
		if err := json.Unmarshal(raw, &parts); err != nil {
			return "", fmt.Errorf("content must be a string or an array of content parts")
		}
		var sb strings.Builder
		for _, p := range parts {
			if p.Type == "text" {
				sb.WriteString(p.Text)
			}
		}
		return sb.String(), nil
	}
	return "", fmt.Errorf("content must be a string or an array of content parts")
}

// promptList accepts a string or an array of strings.
func promptList(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, fmt.Errorf("you must provide a prompt")
	}
	return stringOrList(raw, "prompt", maxInputs)
}

// stopList accepts null, a string or an array of at most 4 strings.
func stopList(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	out, err := stringOrList(raw, "stop", maxStop)
	if err != nil {
		return nil, err
	}
	for _, s := range out {
		if s == "" {
			return nil, fmt.Errorf("stop sequences must not be empty")
		}
	}
	return out, nil
}

func stringOrList(raw json.RawMessage, what string, limit int) ([]string, error) {
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("invalid %s: %v", what, err)
		}
		return []string{s}, nil
	case '[':
		var list []string
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, fmt.Errorf("%s must be a string or an array of strings (token-id arrays are not supported)", what)
		}
		if len(list) == 0 {
			return nil, fmt.Errorf("%s must not be an empty array", what)
		}
		if len(list) > limit {
			return nil, fmt.Errorf("%s has %d entries; at most %d are allowed", what, len(list), limit)
		}
		return list, nil
	}
	return nil, fmt.Errorf("%s must be a string or an array of strings", what)
}

// decodeEmbedding builds a canonical embeddings request.
func decodeEmbedding(body []byte, req *backends.Request) (base64 bool, err error) {
	var in embeddingRequest
	if err := decodeJSON(body, &in); err != nil {
		return false, err
	}
	if in.Model == "" {
		return false, backends.BadRequestf("model", "you must provide a model parameter")
	}
	raw := bytes.TrimSpace(in.Input)
	if len(raw) == 0 || string(raw) == "null" {
		return false, backends.BadRequestf("input", "you must provide an input")
	}
	inputs, err := stringOrList(raw, "input", maxInputs)
	if err != nil {
		return false, backends.BadRequestf("input", "%v", err)
	}
	est := 0
	for i, s := range inputs {
		if s == "" {
			return false, backends.BadRequestf("input", "input[%d] is empty; inputs must be non-empty strings", i)
		}
		est += len(s)
	}
	switch in.EncodingFormat {
	case "", "float":
	case "base64":
		base64 = true
	default:
		return false, backends.BadRequestf("encoding_format", "encoding_format must be float or base64, got %q", in.EncodingFormat)
	}
	req.Op, req.Model, req.Inputs = backends.OpEmbedding, in.Model, inputs
	req.Rows = len(inputs)
	req.EstInputTokens = (est + 3) / 4
	req.BatchKey = batchKey(body, "input", true)
	return base64, nil
}

// headerGetter reads one request header; fasthttp's RequestHeader.Peek fits.
type headerGetter func(name string) []byte

// applyHeaders sets the request's class, SLO targets, site and deadline from
// the model's defaults and the client's headers.
func applyHeaders(req *backends.Request, m *backends.Model, get headerGetter, now time.Time) error {
	req.Priority = m.DefaultPriority
	if v := get(HeaderPriority); len(v) > 0 {
		p, err := backends.ParsePriority(string(v))
		if err != nil {
			return backends.BadRequestf(HeaderPriority, "invalid %s header: %v", HeaderPriority, err)
		}
		req.Priority = p
	}
	req.SLO = m.SLO[req.Priority]
	if v := get(HeaderSite); len(v) > 0 {
		if len(v) > maxSiteLen {
			return backends.BadRequestf(HeaderSite, "invalid %s header: longer than %d bytes", HeaderSite, maxSiteLen)
		}
		req.Site = string(v)
	}
	if req.SLO.E2E == 0 && m.Kind == backends.ModelLLM && req.SLO.TTFT > 0 && req.SLO.TPOT > 0 {
		// A non-streaming LLM request has no first token the client sees: its
		// default end-to-end target is TTFT + TPOT × the planned output.
		o := req.ExpectedOutputTokens(m.ExpectedOutputTokens)
		req.SLO.E2E = req.SLO.TTFT + time.Duration(o)*req.SLO.TPOT
	}
	for _, h := range []struct {
		name string
		dst  *time.Duration
	}{{HeaderSLO, &req.SLO.E2E}, {HeaderSLOTTFT, &req.SLO.TTFT}, {HeaderSLOTPOT, &req.SLO.TPOT}} {
		if v := get(h.name); len(v) > 0 {
			d, err := parseMillis(v)
			if err != nil {
				return backends.BadRequestf(h.name, "invalid %s header: %v", h.name, err)
			}
			*h.dst = d
		}
	}
	var client time.Duration
	if v := get(HeaderTimeout); len(v) > 0 {
		d, err := parseMillis(v)
		if err != nil || d == 0 {
			return backends.BadRequestf(HeaderTimeout, "invalid %s header: want a positive number of milliseconds", HeaderTimeout)
		}
		client = d
	}
	req.Arrival = now
	req.Deadline = Deadline(now, m, client)
	return nil
}

// parseMillis parses a non-negative number of milliseconds (fractions allowed).
func parseMillis(v []byte) (time.Duration, error) {
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || f < 0 || f > 1e9 {
		return 0, fmt.Errorf("want a non-negative number of milliseconds, got %q", v)
	}
	return time.Duration(f * float64(time.Millisecond)), nil
}
