package jsonw

import (
	"math"
	"strconv"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string, escaping as encoding/json does
// without HTML escaping: quotes, backslashes, control characters, U+2028 and
// U+2029 are escaped, and each byte that is not valid UTF-8 becomes U+FFFD.
func AppendString[S string | []byte](b []byte, s S) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		var r rune
		var size int
		switch x := any(s[i:]).(type) {
		case string:
			r, size = utf8.DecodeRuneInString(x)
		case []byte:
			r, size = utf8.DecodeRune(x)
		}
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// AppendStringOrNull appends s as a JSON string, or null when s is empty.
func AppendStringOrNull(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return AppendString(b, s)
}

// AppendFloat appends f in the shortest form that round-trips at the given
// bit size (32 or 64); JSON has no NaN or infinities, which become 0.
func AppendFloat(b []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, '0')
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

// AppendUSD appends a cost in USD with ten decimals and no exponent, as the
// x-accelgate-cost-usd header and the cost fields carry it; a negative or
// non-finite amount becomes 0.
func AppendUSD(b []byte, usd float64) []byte {
	if math.IsNaN(usd) || math.IsInf(usd, 0) || usd < 0 {
		usd = 0
	}
	return strconv.AppendFloat(b, usd, 'f', 10, 64)
}
