package upstream

// Byte-level JSON editing for the hot path: the request body is scanned once,
// top-level members only (values are skipped, not decoded), and edited by
// splicing bytes.

const includeUsageMember = `"include_usage":true`

// forceIncludeUsage returns body with stream_options.include_usage set to true
// and whether it had to change it. body is returned unchanged when the client
// already asked for usage, or when it is not a well-formed JSON object (the
// upstream then answers the malformed body itself).
func forceIncludeUsage(body []byte) ([]byte, bool) {
	obj := skipWS(body, 0)
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
		if j := skipWS(body, obj+1); j < len(body) && body[j] != '}' {
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
			if j := skipWS(body, vs+1); j < len(body) && body[j] != '}' {
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
	i := skipWS(b, obj+1)
	if i < len(b) && b[i] == '}' {
		return false, 0, 0, true
	}
	for i < len(b) {
		if b[i] != '"' {
			return false, 0, 0, false
		}
		kEnd := skipString(b, i)
		if kEnd < 0 {
			return false, 0, 0, false
		}
		name := b[i+1 : kEnd-1]
		i = skipWS(b, kEnd)
		if i >= len(b) || b[i] != ':' {
			return false, 0, 0, false
		}
		vs = skipWS(b, i+1)
		ve = skipValue(b, vs)
		if ve < 0 {
			return false, 0, 0, false
		}
		if string(name) == key {
			return true, vs, ve, true
		}
		i = skipWS(b, ve)
		if i >= len(b) {
			return false, 0, 0, false
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return false, 0, 0, true
		default:
			return false, 0, 0, false
		}
	}
	return false, 0, 0, false
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index just past the string starting at b[i] == '"',
// or -1 if it is not terminated.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// skipValue returns the index just past the JSON value starting at b[i], or -1
// if it is malformed or truncated.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				if i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	case ',', '}', ']', ':':
		return -1
	}
	// A number or a literal: up to the next delimiter.
	start := i
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			if i == start {
				return -1
			}
			return i
		}
		i++
	}
	return i
}
