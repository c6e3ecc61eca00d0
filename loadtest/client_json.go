package loadtest

import (
	"bytes"
	"strconv"
)

// Byte-level JSON readers for the clients' hot path: no reflection, no fmt,
// no allocation beyond growing the destination (the clients write their JSON
// with internal/jsonw).

// valueAfter returns the JSON value that follows key (a quoted key with its
// colon, e.g. `"cost":`) in b, trimmed of leading white space; nil when key
// does not occur. Keys cannot occur inside JSON strings (their quotes would
// be escaped), so a byte search is exact for well-formed input.
func valueAfter(b []byte, key string) []byte {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return nil
	}
	v := b[i+len(key):]
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t' || v[0] == '\n' || v[0] == '\r') {
		v = v[1:]
	}
	return v
}

// lastValueAfter is valueAfter for the last occurrence of key.
func lastValueAfter(b []byte, key string) []byte {
	i := bytes.LastIndex(b, []byte(key))
	if i < 0 {
		return nil
	}
	return valueAfter(b[i:], key)
}

// numberPrefix returns the leading JSON number of v (unquoting a string
// value, as some servers send numbers as strings).
func numberPrefix(v []byte) []byte {
	if len(v) > 0 && v[0] == '"' {
		v = v[1:]
	}
	n := 0
	for n < len(v) {
		c := v[n]
		if (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E' {
			n++
			continue
		}
		break
	}
	return v[:n]
}

// parseFloatBytes parses a JSON number; ok is false when b is not one.
func parseFloatBytes(b []byte) (float64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(b), 64)
	return f, err == nil
}

// parseIntBytes parses a non-negative decimal integer.
func parseIntBytes(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// floatAfter parses the number following key.
func floatAfter(b []byte, key string) (float64, bool) {
	return parseFloatBytes(numberPrefix(valueAfter(b, key)))
}

// intAfter parses the integer following key.
func intAfter(b []byte, key string) (int, bool) {
	return parseIntBytes(numberPrefix(valueAfter(b, key)))
}

// stringAfter returns the raw (still escaped) contents of the JSON string
// following key; ok is false when the value is not a string.
func stringAfter(b []byte, key string) ([]byte, bool) {
	v := valueAfter(b, key)
	if len(v) == 0 || v[0] != '"' {
		return nil, false
	}
	v = v[1:]
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case '"':
			return v[:i], true
		}
	}
	return nil, false
}

// parseUsage reads prompt_tokens and completion_tokens from the usage object
// in b, if any.
func parseUsage(b []byte) (in, out int, ok bool) {
	u := lastValueAfter(b, `"usage":`)
	if len(u) == 0 || u[0] != '{' {
		return 0, 0, false
	}
	if end := bytes.IndexByte(u, '}'); end >= 0 {
		u = u[:end+1]
	}
	in, ok1 := intAfter(u, `"prompt_tokens":`)
	out, ok2 := intAfter(u, `"completion_tokens":`)
	return in, out, ok1 || ok2
}
