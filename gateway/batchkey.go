package gateway

import (
	"bytes"
	"slices"
	"strings"
)

// batchKey is a request's backends.Request.BatchKey: the body's top-level
// members other than skip (the one a merged call concatenates), sorted by
// key, each value without the whitespace outside its strings, written back
// as one JSON object; with dropFloat, an "encoding_format" of "float" (the
// default) is left out. Two requests get the same key exactly when every
// other parameter is the same JSON (key order and whitespace aside: 0.7 and
// 0.70 differ, and are simply not merged).
//
// body has been decoded already, so it is one valid JSON object. It is
// scanned once, in place: one allocation (the key) for up to 16 members,
// where unmarshalling into a map of raw members took 24. Keys are compared
// as written: a key spelled with escapes ("in\u0070ut") is not recognised as
// skip, so its value stays in the key and the request merges only with
// identical ones, which is safe; a key given twice appears twice, likewise.
func batchKey(body []byte, skip string, dropFloat bool) string {
	var stack [16]member
	ms, ok := topMembers(body, stack[:0])
	if !ok {
		return string(body) // cannot happen for a decoded body; merged only with an identical body
	}
	n := 2
	kept := ms[:0]
	for _, m := range ms {
		if len(m.key) == len(skip)+2 && string(m.key[1:len(m.key)-1]) == skip ||
			dropFloat && string(m.key) == `"encoding_format"` && string(m.val) == `"float"` {
			continue
		}
		kept = append(kept, m)
		n += len(m.key) + len(m.val) + 2
	}
	slices.SortFunc(kept, func(a, b member) int { return bytes.Compare(a.key, b.key) })
	var b strings.Builder
	b.Grow(n)
	b.WriteByte('{')
	for i, m := range kept {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(m.key)
		b.WriteByte(':')
		writeCompact(&b, m.val)
	}
	b.WriteByte('}')
	return b.String()
}

// member is one top-level member of a JSON object: its key with the quotes,
// as written, and its value, trimmed.
type member struct{ key, val []byte }

// topMembers appends the top-level members of the JSON object in body to
// ms. It assumes valid JSON (the body was decoded) and reports false when
// body is not an object or ends early.
func topMembers(body []byte, ms []member) ([]member, bool) {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return nil, false
	}
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == '}' {
		return ms, true
	}
	for i < len(body) {
		if body[i] != '"' {
			return nil, false
		}
		k := i
		i = skipString(body, i)
		key := body[k:i]
		i = skipSpace(body, i)
		if i >= len(body) || body[i] != ':' {
			return nil, false
		}
		i = skipSpace(body, i+1)
		v := i
		i = skipValue(body, i)
		if i > len(body) || i == v {
			return nil, false
		}
		ms = append(ms, member{key: key, val: body[v:i]})
		i = skipSpace(body, i)
		if i >= len(body) {
			return nil, false
		}
		switch body[i] {
		case ',':
			i = skipSpace(body, i+1)
		case '}':
			return ms, true
		default:
			return nil, false
		}
	}
	return nil, false
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i] ('"'),
// or len(b)+1 when it is not closed.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b) + 1
}

// skipValue returns the index just past the value starting at b[i], or
// len(b)+1 when it does not end.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return len(b) + 1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(b) + 1
	default: // a number, true, false or null
		for i < len(b) && !isSpace(b[i]) && b[i] != ',' && b[i] != '}' && b[i] != ']' {
			i++
		}
		return i
	}
}

// writeCompact writes the valid JSON value v without the whitespace outside
// its strings.
func writeCompact(b *strings.Builder, v []byte) {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '"' {
			j := min(skipString(v, i), len(v))
			b.Write(v[i:j])
			i = j - 1
			continue
		}
		if !isSpace(c) {
			b.WriteByte(c)
		}
	}
}
