package backends

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors shared by all backends and the gateway. gateway/errors.go is
// the one place that maps them to HTTP, gRPC and OpenAI statuses.
var (
	// ErrBadRequest: the client's request is invalid (400). Do not retry.
	ErrBadRequest = errors.New("bad request")
	// ErrContextLength: prompt plus max_tokens exceed the model's context (400).
	ErrContextLength = errors.New("context length exceeded")
	// ErrUnknownModel: no model of that name is configured (404).
	ErrUnknownModel = errors.New("unknown model")
	// ErrNoBackend: no healthy backend serves the model (503). Retry later.
	ErrNoBackend = errors.New("no backend available")
	// ErrShed: the request was refused to protect SLOs (429 with Retry-After).
	ErrShed = errors.New("request shed")
	// ErrUnavailable: the backend failed or cannot be reached; the request may
	// be retried on another backend (502 when nothing is left).
	ErrUnavailable = errors.New("backend unavailable")
	// ErrTimeout: the request's hard timeout passed (504).
	ErrTimeout = errors.New("hard timeout")
)

// UpstreamError is an error response from an upstream server, kept with its
// status so the gateway can relay it in the client's protocol.
type UpstreamError struct {
	Status  int    // the upstream's HTTP status
	Message string // the upstream's error message
	Type    string // OpenAI error type, when the upstream gave one
	Code    string // OpenAI error code, when the upstream gave one
	Param   string // OpenAI error param, when the upstream gave one
}

func (e *UpstreamError) Error() string {
	return fmt.Sprintf("upstream returned %d: %s", e.Status, e.Message)
}

// ClassifyUpstreamError wraps an upstream's error answer with the sentinel
// its HTTP status maps to: 429 → ErrShed; 5xx and the statuses that say
// nothing about the request (401, 403, 408, non-error codes) → ErrUnavailable,
// so the request may be retried elsewhere; other 4xx stay the client's mistake
// and are returned as they are.
func ClassifyUpstreamError(ue *UpstreamError) error {
	switch {
	case ue.Status == http.StatusTooManyRequests:
		return fmt.Errorf("%w: %w", ErrShed, ue)
	case ue.Status >= 500, ue.Status == http.StatusUnauthorized, ue.Status == http.StatusForbidden,
		ue.Status == http.StatusRequestTimeout, ue.Status < 400:
		return fmt.Errorf("%w: %w", ErrUnavailable, ue)
	}
	return ue
}

// BadRequestf returns an error wrapping ErrBadRequest with a message for the
// client. param names the offending field ("" when none).
func BadRequestf(param, format string, a ...any) error {
	return &ParamError{Param: param, Err: ErrBadRequest, Msg: fmt.Sprintf(format, a...)}
}

// ParamError attaches the name of the offending request field to an error, for
// OpenAI's error.param. Msg, when set, is the whole client-facing message
// (Err then only classifies it).
type ParamError struct {
	Param string
	Err   error
	Msg   string
}

func (e *ParamError) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	return e.Err.Error()
}

// Unwrap returns the wrapped error.
func (e *ParamError) Unwrap() error { return e.Err }
