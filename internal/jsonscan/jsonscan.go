package jsonscan

import (
	"bytes"
	"unicode/utf8"
)

// Space returns the index of the first byte at or after i that is not JSON
// whitespace (len(b) when there is none).
func Space(b []byte, i int) int {
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

// String returns the index just past the string starting at b[i] == '"',
// or -1 if it is not terminated.
func String(b []byte, i int) int {
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

// Value returns the index just past the JSON value starting at b[i], or -1
// if it is malformed or truncated.
func Value(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return String(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = String(b, i)
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

// KeyIs reports whether the raw bytes of a JSON string (between its quotes,
// escapes intact) decode to want, an ASCII string without quotes or
// backslashes. It does not allocate.
func KeyIs(raw []byte, want string) bool {
	if string(raw) == want {
		return true
	}
	if len(raw) <= len(want) || len(raw) > 6*len(want) || bytes.IndexByte(raw, '\\') < 0 {
		return false
	}
	j := 0
	for i := 0; i < len(raw); j++ {
		c := raw[i]
		i++
		if c == '\\' {
			if i >= len(raw) {
				return false
			}
			e := raw[i]
			i++
			switch e {
			case '"', '\\', '/':
				c = e
			case 'b':
				c = '\b'
			case 'f':
				c = '\f'
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			case 'u':
				if i+4 > len(raw) {
					return false
				}
				r := 0
				for _, h := range raw[i : i+4] {
					switch {
					case '0' <= h && h <= '9':
						r = r<<4 | int(h-'0')
					case 'a' <= h && h <= 'f':
						r = r<<4 | int(h-'a'+10)
					case 'A' <= h && h <= 'F':
						r = r<<4 | int(h-'A'+10)
					default:
						return false
					}
				}
				if r >= utf8.RuneSelf {
					return false // not ASCII, so not in want
				}
				c = byte(r)
				i += 4
			default:
				return false
			}
		}
		if j >= len(want) || want[j] != c {
			return false
		}
	}
	return j == len(want)
}

// Members calls fn with the key (the bytes between its quotes, escapes
// intact) and the bounds of the value, b[vs:ve], of each member of the JSON
// object starting at b[i] ('{'), in order, until fn returns false. It
// returns the index just past the object, or -1 when b is not a well-formed
// object as far as a scan of its members can tell (fn may have been called
// for the members before the fault). When fn stops the scan, it returns the
// index just past the member that stopped it. fn must not retain key beyond
// b's lifetime.
func Members(b []byte, i int, fn func(key []byte, vs, ve int) bool) int {
	if i >= len(b) || b[i] != '{' {
		return -1
	}
	i = Space(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1
	}
	for i < len(b) {
		if b[i] != '"' {
			return -1
		}
		k := i
		if i = String(b, i); i < 0 {
			return -1
		}
		key := b[k+1 : i-1]
		if i = Space(b, i); i >= len(b) || b[i] != ':' {
			return -1
		}
		v := Space(b, i+1)
		if i = Value(b, v); i < 0 {
			return -1
		}
		if !fn(key, v, i) {
			return i
		}
		if i = Space(b, i); i >= len(b) {
			return -1
		}
		switch b[i] {
		case ',':
			i = Space(b, i+1)
		case '}':
			return i + 1
		default:
			return -1
		}
	}
	return -1
}

// Int parses v, a JSON value, as an integer: an optional minus sign and
// decimal digits, as encoding/json accepts into an int (no fraction, no
// exponent). It reports false for anything else, and for a value that
// overflows an int64.
func Int(v []byte) (int64, bool) {
	neg := len(v) > 0 && v[0] == '-'
	if neg {
		v = v[1:]
	}
	if len(v) == 0 || len(v) > 1 && v[0] == '0' {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<63-1-d)/10 && !(neg && n == (1<<63)/10 && d == 8) {
			return 0, false
		}
		n = n*10 + d
	}
	if neg {
		return -int64(n), true
	}
	return int64(n), true
}
