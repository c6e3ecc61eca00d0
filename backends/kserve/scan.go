package kserve

import (
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds the nesting of JSON values the scanner will skip or decode
// (nested tensor data included), so hostile input cannot exhaust the stack.
const maxDepth = 64

var errSyntax = errors.New("invalid JSON")

// scanner is a minimal JSON reader over one buffer. It never retains the
// buffer past a decode call: strings it returns are copies.
type scanner struct {
	b   []byte
	i   int
	tmp []byte // scratch for unescaping strings
}

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (s *scanner) ws() {
	for s.i < len(s.b) && isWS(s.b[s.i]) {
		s.i++
	}
}

// peek returns the next non-space byte (0 at the end).
func (s *scanner) peek() byte {
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

// expect consumes c after optional white space.
func (s *scanner) expect(c byte) bool {
	if s.peek() != c {
		return false
	}
	s.i++
	return true
}

// literal consumes a bare word (true, false, null).
func (s *scanner) literal(w string) bool {
	if len(s.b)-s.i >= len(w) && string(s.b[s.i:s.i+len(w)]) == w {
		s.i += len(w)
		return true
	}
	return false
}

// object iterates over the members of an object, calling f with each key (a
// view valid only during the call; escapes decoded) with the scanner at the
// member's value, which f must consume.
func (s *scanner) object(f func(key []byte) error) error {
	if !s.expect('{') {
		return errSyntax
	}
	if s.expect('}') {
		return nil
	}
	for {
		if s.peek() != '"' {
			return errSyntax
		}
		key, err := s.stringView()
		if err != nil {
			return err
		}
		if !s.expect(':') {
			return errSyntax
		}
		s.ws()
		if err := f(key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return errSyntax
		}
	}
}

// array iterates over the elements of an array, calling f with the scanner at
// each element, which f must consume.
func (s *scanner) array(f func(i int) error) error {
	if !s.expect('[') {
		return errSyntax
	}
	if s.expect(']') {
		return nil
	}
	for n := 0; ; n++ {
		s.ws()
		if err := f(n); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return errSyntax
		}
	}
}

// stringView reads a JSON string and returns its contents, unescaped. The
// result aliases the input or the scratch buffer: copy it to keep it.
func (s *scanner) stringView() ([]byte, error) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, errSyntax
	}
	s.i++
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			return v, nil
		case c == '\\':
			return s.stringSlow(start)
		case c < 0x20:
			return nil, errSyntax
		}
		s.i++
	}
	return nil, errSyntax
}

// stringSlow finishes a string that contains escapes, into s.tmp.
func (s *scanner) stringSlow(start int) ([]byte, error) {
	out := append(s.tmp[:0], s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			s.tmp = out
			return out, nil
		case c < 0x20:
			return nil, errSyntax
		case c != '\\':
			out = append(out, c)
			s.i++
			continue
		}
		s.i++
		if s.i >= len(s.b) {
			return nil, errSyntax
		}
		e := s.b[s.i]
		s.i++
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return nil, errSyntax
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if s.i+1 < len(s.b) && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
					save := s.i
					s.i += 2
					var ok2 bool
					if r2, ok2 = s.hex4(); !ok2 {
						return nil, errSyntax
					}
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						r = d
					} else {
						s.i = save // not a pair: the second escape stands alone
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, errSyntax
		}
	}
	return nil, errSyntax
}

func (s *scanner) hex4() (rune, bool) {
	if len(s.b)-s.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s.b[s.i : s.i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	s.i += 4
	return r, true
}

// str reads a JSON string into a new Go string. Invalid UTF-8 becomes
// U+FFFD, byte by byte, as encoding/json does, so names and ids echo back
// unchanged.
func (s *scanner) str() (string, error) {
	v, err := s.stringView()
	if err != nil {
		return "", err
	}
	if utf8.Valid(v) {
		return string(v), nil
	}
	out := make([]byte, 0, len(v)+8)
	for len(v) > 0 {
		r, n := utf8.DecodeRune(v)
		if r == utf8.RuneError && n == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, v[:n]...)
		}
		v = v[n:]
	}
	return string(out), nil
}

// number reads a JSON number token and returns it, with whether it is an
// integer (no fraction, no exponent).
func (s *scanner) number() (tok []byte, integer bool, err error) {
	b, i := s.b, s.i
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return nil, false, errSyntax
	}
	integer = true
	if i < len(b) && b[i] == '.' {
		integer = false
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return nil, false, errSyntax
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		integer = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return nil, false, errSyntax
		}
	}
	s.i = i
	return b[start:i], integer, nil
}

// skip consumes one JSON value of any kind.
func (s *scanner) skip(depth int) error {
	if depth > maxDepth {
		return errTooDeep
	}
	switch c := s.peek(); c {
	case '{':
		return s.object(func([]byte) error { return s.skip(depth + 1) })
	case '[':
		return s.array(func(int) error { return s.skip(depth + 1) })
	case '"':
		_, err := s.stringView()
		return err
	case 't':
		if s.literal("true") {
			return nil
		}
	case 'f':
		if s.literal("false") {
			return nil
		}
	case 'n':
		if s.literal("null") {
			return nil
		}
	default:
		_, _, err := s.number()
		return err
	}
	return errSyntax
}

var errTooDeep = errors.New("JSON nested too deeply")

// parseInt parses an integer token (as number returned it) without
// allocating. ok is false when it overflows int64... neg tells the sign;
// mag is the magnitude, valid when ok.
func parseIntToken(tok []byte) (mag uint64, neg bool, ok bool) {
	if len(tok) > 0 && tok[0] == '-' {
		neg = true
		tok = tok[1:]
	}
	for _, c := range tok {
		d := uint64(c - '0')
		if mag > (1<<64-1-d)/10 {
			return 0, neg, false
		}
		mag = mag*10 + d
	}
	return mag, neg, true
}

var pow10f32 = [...]float32{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10}
var pow10f64 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// decimalParts splits a valid JSON number token into its decimal mantissa
// and power of ten; ok is false when the mantissa has more than 19 digits or
// the exponent is large (then use strconv).
func decimalParts(tok []byte) (mant uint64, exp10 int, neg, ok bool) {
	i := 0
	if tok[0] == '-' {
		neg = true
		i++
	}
	nd := 0
	for ; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c >= '0' && c <= '9':
			if mant == 0 && c == '0' { // a leading zero
				continue
			}
			if nd >= 19 {
				return 0, 0, neg, false
			}
			mant = mant*10 + uint64(c-'0')
			nd++
		case c == '.':
			// Every digit after the point lowers the exponent by one;
			// leading zeros add nothing to the mantissa.
			frac := 0
			for i++; i < len(tok) && tok[i] >= '0' && tok[i] <= '9'; i++ {
				c := tok[i]
				if mant == 0 && c == '0' {
					frac++
					continue
				}
				if nd >= 19 {
					return 0, 0, neg, false
				}
				mant = mant*10 + uint64(c-'0')
				nd++
				frac++
			}
			exp10 -= frac
			i--
		case c == 'e' || c == 'E':
			e, eneg := 0, false
			i++
			if tok[i] == '+' || tok[i] == '-' {
				eneg = tok[i] == '-'
				i++
			}
			for ; i < len(tok); i++ {
				if e > 1000 {
					return 0, 0, neg, false
				}
				e = e*10 + int(tok[i]-'0')
			}
			if eneg {
				e = -e
			}
			exp10 += e
			return mant, exp10, neg, true
		}
	}
	return mant, exp10, neg, true
}

// parseFloat32 parses a JSON number token as float32, correctly rounded:
// exactly representable mantissas and small powers of ten are computed
// directly (Clinger's fast path), the rest by strconv.
func parseFloat32(tok []byte) (float32, error) {
	if m, e, neg, ok := decimalParts(tok); ok && m <= 1<<24 && e >= -10 && e <= 10 {
		f := float32(m)
		if e < 0 {
			f /= pow10f32[-e]
		} else {
			f *= pow10f32[e]
		}
		if neg {
			f = -f
		}
		return f, nil
	}
	f, err := strconv.ParseFloat(string(tok), 32)
	return float32(f), err
}

// parseFloat64 is parseFloat32 for float64.
func parseFloat64(tok []byte) (float64, error) {
	if m, e, neg, ok := decimalParts(tok); ok && m <= 1<<53 && e >= -22 && e <= 22 {
		f := float64(m)
		if e < 0 {
			f /= pow10f64[-e]
		} else {
			f *= pow10f64[e]
		}
		if neg {
			f = -f
		}
		return f, nil
	}
	return strconv.ParseFloat(string(tok), 64)
}
