package upstream

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/accelgate/accelgate/backends"
)

// maxErrorText bounds the raw text kept as an error message.
const maxErrorText = 1 << 10

// errorBody accepts the error shapes of the common servers:
//
//	OpenAI, newer vLLM:   {"error":{"message":..,"type":..,"param":..,"code":..}}
//	older vLLM, SGLang:   {"object":"error","message":..,"type":..,"param":..,"code":..}
//	TGI:                  {"error":"...","error_type":"..."}
//	FastAPI:              {"detail":"..."} or, for a validation error,
//	                      {"detail":[{"loc":["body","messages"],"msg":"Field required",...}]}
//
// Anything else (HTML, plain text) becomes the message as it is, trimmed and
// cut to maxErrorText bytes; an empty body becomes the status text.
type errorBody struct {
	Error     json.RawMessage `json:"error"`
	ErrorType string          `json:"error_type"`
	errorFields
	Detail json.RawMessage `json:"detail"`
}

type errorFields struct {
	Message string          `json:"message"`
	Type    string          `json:"type"`
	Param   json.RawMessage `json:"param"`
	Code    json.RawMessage `json:"code"`
}

// parseUpstreamError builds the error for an upstream answer with the given
// status and body.
func parseUpstreamError(status int, body []byte) *backends.UpstreamError {
	ue := &backends.UpstreamError{Status: status}
	var eb errorBody
	if json.Unmarshal(body, &eb) == nil {
		f := eb.errorFields
		switch {
		case len(eb.Error) > 0 && eb.Error[0] == '{':
			var inner errorFields
			if json.Unmarshal(eb.Error, &inner) == nil {
				f = inner
			}
		case len(eb.Error) > 0 && eb.Error[0] == '"':
			_ = json.Unmarshal(eb.Error, &f.Message)
			if f.Type == "" {
				f.Type = eb.ErrorType
			}
		}
		ue.Message, ue.Type = f.Message, f.Type
		ue.Param, ue.Code = rawText(f.Param), rawText(f.Code)
		if ue.Message == "" && len(eb.Detail) > 0 {
			ue.Message = detailText(eb.Detail)
		}
	}
	if ue.Message == "" {
		ue.Message = strings.TrimSpace(string(truncate(body, maxErrorText)))
	}
	if ue.Message == "" {
		ue.Message = http.StatusText(status)
	}
	return ue
}

// detailText renders FastAPI's detail: a string as it is, a list of
// validation errors as "body.messages: Field required; …" (leaving out the
// "input" each one echoes), anything else as its JSON.
func detailText(v json.RawMessage) string {
	var items []struct {
		Loc []json.RawMessage `json:"loc"`
		Msg string            `json:"msg"`
	}
	if json.Unmarshal(v, &items) != nil || len(items) == 0 {
		return rawText(v)
	}
	var sb strings.Builder
	for i, it := range items {
		if it.Msg == "" {
			return rawText(v)
		}
		if i > 0 {
			sb.WriteString("; ")
		}
		for j, l := range it.Loc {
			if j > 0 {
				sb.WriteByte('.')
			}
			sb.WriteString(rawText(l))
		}
		if len(it.Loc) > 0 {
			sb.WriteString(": ")
		}
		sb.WriteString(it.Msg)
		if sb.Len() > maxErrorText {
			break
		}
	}
	return string(truncate([]byte(sb.String()), maxErrorText))
}

// rawText renders a JSON value as text: a string unquoted, null as "", anything
// else (a number code, a detail list) as its JSON.
func rawText(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || string(v) == "null" {
		return ""
	}
	if v[0] == '"' {
		var s string
		if json.Unmarshal(v, &s) == nil {
			return s
		}
	}
	return string(truncate(v, maxErrorText))
}

// truncate cuts b to at most n bytes, at a UTF-8 character boundary.
func truncate(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return b[:n]
}

// streamError returns the error carried by a stream event whose top-level
// object has an "error" member (or is vLLM's flat {"object":"error",...}), or
// nil if it is not an error. The status comes from a numeric code in the
// 4xx-5xx range, and is 500 otherwise.
func streamError(payload []byte) *backends.UpstreamError {
	var eb struct {
		Error  json.RawMessage `json:"error"`
		Object string          `json:"object"`
	}
	if json.Unmarshal(payload, &eb) != nil {
		return nil
	}
	e := bytes.TrimSpace(eb.Error)
	if (len(e) == 0 || string(e) == "null") && eb.Object != "error" {
		return nil
	}
	ue := parseUpstreamError(http.StatusInternalServerError, payload)
	if c, err := strconv.Atoi(ue.Code); err == nil && c >= 400 && c <= 599 {
		ue.Status = c
	}
	return ue
}
