package gateway

import (
	"bytes"
	"slices"
	"strings"

	"github.com/accelgate/accelgate/internal/jsonscan"
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
// scanned once, in place (internal/jsonscan): one allocation (the key) for
// up to 16 members, where unmarshalling into a map of raw members took 24.
// Skip and encoding_format are recognised after unescaping, as a decoder
// would ("in\u0070ut" is input); other keys are sorted and compared as
// written, so two spellings of one key only keep requests apart, which is
// safe; a key given twice appears twice, likewise.
func batchKey(body []byte, skip string, dropFloat bool) string {
	var stack [16]member
	ms, ok := topMembers(body, stack[:0])
	if !ok {
		return string(body) // cannot happen for a decoded body; merged only with an identical body
	}
	n := 2
	kept := ms[:0]
	for _, m := range ms {
		if name := m.key[1 : len(m.key)-1]; jsonscan.KeyIs(name, skip) ||
			dropFloat && jsonscan.KeyIs(name, "encoding_format") && string(m.val) == `"float"` {
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
// ms. It reports false when body is not a well-formed object as far as a
// scan of its top-level members can tell.
func topMembers(body []byte, ms []member) ([]member, bool) {
	i := jsonscan.Space(body, 0)
	if i >= len(body) || body[i] != '{' {
		return nil, false
	}
	i = jsonscan.Space(body, i+1)
	if i < len(body) && body[i] == '}' {
		return ms, true
	}
	for i < len(body) {
		if body[i] != '"' {
			return nil, false
		}
		k := i
		if i = jsonscan.String(body, i); i < 0 {
			return nil, false
		}
		key := body[k:i]
		i = jsonscan.Space(body, i)
		if i >= len(body) || body[i] != ':' {
			return nil, false
		}
		v := jsonscan.Space(body, i+1)
		if i = jsonscan.Value(body, v); i < 0 {
			return nil, false
		}
		ms = append(ms, member{key: key, val: body[v:i]})
		i = jsonscan.Space(body, i)
		if i >= len(body) {
			return nil, false
		}
		switch body[i] {
		case ',':
			i = jsonscan.Space(body, i+1)
		case '}':
			return ms, true
		default:
			return nil, false
		}
	}
	return nil, false
}

// writeCompact writes the valid JSON value v without the whitespace outside
// its strings.
func writeCompact(b *strings.Builder, v []byte) {
	for i := 0; i < len(v); {
		switch c := v[i]; c {
		case '"':
			j := jsonscan.String(v, i)
			if j < 0 {
				j = len(v)
			}
			b.Write(v[i:j])
			i = j
		case ' ', '\t', '\n', '\r':
			i++
		default:
			b.WriteByte(c)
			i++
		}
	}
}
