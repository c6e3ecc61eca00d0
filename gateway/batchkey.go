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
	ms := stack[:0]
	n := 2
	if jsonscan.Members(body, jsonscan.Space(body, 0), func(key []byte, vs, ve int) bool {
		val := body[vs:ve]
		if !jsonscan.KeyIs(key, skip) && !(dropFloat && jsonscan.KeyIs(key, "encoding_format") && string(val) == `"float"`) {
			ms = append(ms, member{key: key, val: val})
			n += len(key) + len(val) + 4
		}
		return true
	}) < 0 {
		return string(body) // cannot happen for a decoded body; merged only with an identical body
	}
	slices.SortFunc(ms, func(a, b member) int { return bytes.Compare(a.key, b.key) })
	var b strings.Builder
	b.Grow(n)
	b.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.Write(m.key)
		b.WriteString(`":`)
		writeCompact(&b, m.val)
	}
	b.WriteByte('}')
	return b.String()
}

// member is one top-level member of a JSON object: its key between the
// quotes, as written, and its value.
type member struct{ key, val []byte }

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
