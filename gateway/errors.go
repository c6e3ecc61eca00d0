package gateway

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/router"
)

// ErrNotFound is a request for a route the gateway does not serve (404).
var ErrNotFound = errors.New("not found")

// ErrMethodNotAllowed is a known route with the wrong method (405).
var ErrMethodNotAllowed = errors.New("method not allowed")

// ErrBodyTooLarge is a request body over the configured limit (413).
var ErrBodyTooLarge = errors.New("request body too large")

// Status is how one error is reported in every protocol the gateway speaks.
type Status struct {
	HTTP       int        // HTTP status code
	GRPC       codes.Code // gRPC status code (KServe v2 gRPC front)
	OpenAIType string     // OpenAI error.type
	OpenAICode string     // OpenAI error.code ("" is sent as null)
	Retryable  bool       // the client may retry later (Retry-After is sent)
}

// statusTable is the one place that maps errors to statuses. Handlers never
// pick status codes inline; they call Classify. Order matters: the first
// matching sentinel wins.
var statusTable = []struct {
	err error
	st  Status
}{
	{ErrBodyTooLarge, Status{413, codes.ResourceExhausted, "invalid_request_error", "request_too_large", false}},
	{backends.ErrContextLength, Status{400, codes.InvalidArgument, "invalid_request_error", "context_length_exceeded", false}},
	{backends.ErrBadRequest, Status{400, codes.InvalidArgument, "invalid_request_error", "", false}},
	{backends.ErrUnknownModel, Status{404, codes.NotFound, "not_found_error", "model_not_found", false}},
	{ErrNotFound, Status{404, codes.Unimplemented, "not_found_error", "unknown_url", false}},
	{ErrMethodNotAllowed, Status{405, codes.Unimplemented, "invalid_request_error", "method_not_allowed", false}},
	{backends.ErrShed, Status{429, codes.Unavailable, "rate_limit_error", "slo_unattainable", true}},
	{backends.ErrNoBackend, Status{503, codes.Unavailable, "service_unavailable_error", "no_backend", true}},
	{backends.ErrTimeout, Status{504, codes.DeadlineExceeded, "timeout_error", "timeout", false}},
	{context.DeadlineExceeded, Status{504, codes.DeadlineExceeded, "timeout_error", "timeout", false}},
	{context.Canceled, Status{499, codes.Canceled, "invalid_request_error", "client_closed_request", false}},
	{backends.ErrUnavailable, Status{502, codes.Unavailable, "server_error", "backend_unavailable", true}},
}

// Classify maps an error to its Status. Upstream errors keep the upstream's
// 4xx status (the client's mistake, relayed); upstream 5xx become 502.
// Anything unknown is a 500.
func Classify(err error) Status {
	if ue := asUpstream(err); ue != nil && !errors.Is(err, backends.ErrShed) && !errors.Is(err, backends.ErrUnavailable) {
		st := Status{HTTP: ue.Status, GRPC: codes.Unknown, OpenAIType: ue.Type, OpenAICode: ue.Code}
		switch {
		case ue.Status == 404:
			st.GRPC = codes.NotFound
		case ue.Status >= 400 && ue.Status < 500:
			st.GRPC = codes.InvalidArgument
		default:
			st.HTTP, st.GRPC = 502, codes.Unavailable
		}
		if st.OpenAIType == "" {
			st.OpenAIType = "invalid_request_error"
			if st.HTTP >= 500 {
				st.OpenAIType = "server_error"
			}
		}
		return st
	}
	for _, e := range statusTable {
		if errors.Is(err, e.err) {
			return e.st
		}
	}
	return Status{500, codes.Internal, "server_error", "internal_error", false}
}

// asUpstream finds an *UpstreamError in err's tree without allocating
// (errors.As needs an escaping pointer).
func asUpstream(err error) *backends.UpstreamError {
	for err != nil {
		switch x := err.(type) {
		case *backends.UpstreamError:
			return x
		case interface{ Unwrap() error }:
			err = x.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range x.Unwrap() {
				if ue := asUpstream(e); ue != nil {
					return ue
				}
			}
			return nil
		default:
			return nil
		}
	}
	return nil
}

// errorParam returns the request field an error names, for OpenAI's error.param.
func errorParam(err error) string {
	var pe *backends.ParamError
	if errors.As(err, &pe) {
		return pe.Param
	}
	var ue *backends.UpstreamError
	if errors.As(err, &ue) {
		return ue.Param
	}
	return ""
}

// errorMessage is the client-facing message: the upstream's own message when
// relayed, otherwise the error text.
func errorMessage(err error) string {
	var ue *backends.UpstreamError
	if errors.As(err, &ue) && ue.Message != "" {
		return ue.Message
	}
	return err.Error()
}

// retryAfterSeconds is the Retry-After value for a retryable error.
func retryAfterSeconds(err error) int {
	var se *router.ShedError
	if errors.As(err, &se) {
		s := int((se.RetryAfter + 999_999_999) / 1_000_000_000)
		if s < 1 {
			s = 1
		}
		return s
	}
	return 1
}
