package upstream

import (
	"slices"

	"github.com/accelgate/accelgate/internal/jsonscan"
)

// Byte-level JSON editing for the hot path: the request body is scanned once,
// top-level members only (values are skipped, not decoded), and edited by
// splicing bytes.

const includeUsageMember = `"include_usage":true`

// forceIncludeUsage returns body with stream_options.include_usage set to true
// and whether it had to change it. body is returned unchanged when the client
// already asked for usage, or when it is not a well-formed JSON object (the
// upstream then answers the malformed body itself).
func forceIncludeUsage(body []byte) ([]byte, bool) {
	obj := jsonscan.Space(body, 0)
	if obj >= len(body) || body[obj] != '{' {
		return body, false
	}
	found, vs, ve, ok := findMember(body, obj, "stream_options")
	if !ok {
		return body, false
	}
	if !found {
		// {"stream_options":{"include_usage":true}, ...the client's members}
		ins := `"stream_options":{` + includeUsageMember + `}`
		if j := jsonscan.Space(body, obj+1); j < len(body) && body[j] != '}' {
			ins += ","
		}
		return splice(body, obj+1, obj+1, ins), true
	}
	switch body[vs] {
	case 'n': // "stream_options": null
		return splice(body, vs, ve, `{`+includeUsageMember+`}`), true
	case '{':
		found, ivs, ive, ok := findMember(body, vs, "include_usage")
		if !ok {
			return body, false
		}
		if !found {
			ins := includeUsageMember
			if j := jsonscan.Space(body, vs+1); j < len(body) && body[j] != '}' {
				ins += ","
			}
			return splice(body, vs+1, vs+1, ins), true
		}
		if string(body[ivs:ive]) == "true" {
			return body, false
		}
		return splice(body, ivs, ive, "true"), true
	}
	return body, false
}

// splice returns a new slice holding b with b[i:j] replaced by s.
func splice(b []byte, i, j int, s string) []byte {
	out := make([]byte, 0, len(b)-(j-i)+len(s))
	out = append(out, b[:i]...)
	out = append(out, s...)
	return append(out, b[j:]...)
}

// findMember looks for the member named key (compared verbatim, without
// unescaping) of the object starting at b[obj] == '{'. It returns whether it
// was found and the bounds of its value, or ok false when the object is
// malformed.
func findMember(b []byte, obj int, key string) (found bool, vs, ve int, ok bool) {
	ok = jsonscan.Members(b, obj, func(name []byte, s, e int) bool {
		if string(name) != key {
			return true
		}
		found, vs, ve = true, s, e
		return false
	}) >= 0
	return found && ok, vs, ve, ok
}

// modelKey is the member setModel edits.
const modelKey = "model"

// setModel returns body with the value of its top-level "model" member
// replaced by quoted, a JSON string literal (quotes included), and whether it
// changed anything; the result is appended to dst, which must not overlap
// body. Only the members of the top-level object count: "model" keys in nested
// objects and inside strings are skipped. A key is compared after unescaping,
// as a JSON decoder would ("mod\u0065l" is "model").
//
// With all set (the request to the upstream), every top-level "model" member
// is replaced, whatever its value, so that whichever of several duplicates a
// decoder keeps it reads quoted; when there is none and insert is set, one is
// added as the first member. Without all (a response), only the first one is
// replaced, and the scan stops there.
//
// body is returned unchanged (false) when no edit is needed (the values are
// already quoted, or there is no member and no insert) or when it is not a
// well-formed JSON object as far as a scan of its top-level members can tell
// (the upstream then answers the malformed body itself).
func setModel(dst, body []byte, quoted string, all, insert bool) ([]byte, bool) {
	var buf [2][2]int
	spans, obj, ok := modelSpans(body, buf[:0], all)
	if !ok {
		return body, false
	}
	if len(spans) == 0 {
		if !insert {
			return body, false
		}
		// {"model":quoted, ...the client's members}
		comma := 0
		if j := jsonscan.Space(body, obj+1); j < len(body) && body[j] != '}' {
			comma = 1
		}
		dst = slices.Grow(dst, len(body)+len(`"model":`)+len(quoted)+comma)
		dst = append(dst, body[:obj+1]...)
		dst = append(dst, `"model":`...)
		dst = append(dst, quoted...)
		if comma == 1 {
			dst = append(dst, ',')
		}
		return append(dst, body[obj+1:]...), true
	}
	n, same := len(body), true
	for _, s := range spans {
		n += len(quoted) - (s[1] - s[0])
		same = same && string(body[s[0]:s[1]]) == quoted
	}
	if same {
		return body, false
	}
	dst = slices.Grow(dst, n)
	last := 0
	for _, s := range spans {
		dst = append(dst, body[last:s[0]]...)
		dst = append(dst, quoted...)
		last = s[1]
	}
	return append(dst, body[last:]...), true
}

// modelSpans appends to spans the bounds of the values of the top-level
// "model" members of the object in b (only the first one unless all is set)
// and returns the index of the object's '{'. ok is false when b is not an
// object or is malformed (up to the first match when all is false).
func modelSpans(b []byte, spans [][2]int, all bool) (_ [][2]int, obj int, ok bool) {
	obj = jsonscan.Space(b, 0)
	if jsonscan.Members(b, obj, func(name []byte, vs, ve int) bool {
		if !jsonscan.KeyIs(name, modelKey) {
			return true
		}
		spans = append(spans, [2]int{vs, ve})
		return all
	}) < 0 {
		return spans, 0, false
	}
	return spans, obj, true
}
