package jsonw

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzAppendString checks the hand-written JSON string encoder: its output is
// valid JSON that decodes back to the input, with each invalid UTF-8 byte
// replaced by U+FFFD (as encoding/json does), and contains no raw control
// characters and no raw U+2028/U+2029. The string and []byte forms agree.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{
		"", "a", "hello world", `"`, `\`, `\"`, "\\u0041", "</script>&<>",
		"\x00\x01\x07\x08\t\n\v\f\r\x1b\x1f\x20\x7f",
		"héllo 世界 🦀", "\u2028\u2029", "a\u2028b\u2029c", "\ufffd", "\xef\xbf\xbd",
		"\xff", "\xc3", "\xc3\x28", "\xe2\x80", "\xe2\x80\xa8\xe2\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80",
		"\xf0\x9f\xa6", "a\xffb\xfe", "\xc0\xaf", "\U0010ffff", strings.Repeat("\\\"\n", 100),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		prefix := []byte("pre")
		out := AppendString(prefix, s)
		if !bytes.HasPrefix(out, []byte("pre")) {
			t.Fatalf("prefix lost: %q", out)
		}
		enc := out[len(prefix):]
		if !utf8.Valid(enc) {
			t.Fatalf("%q encoded to invalid UTF-8 %q", s, enc)
		}
		for _, c := range enc {
			if c < 0x20 {
				t.Fatalf("%q encoded with a raw control byte: %q", s, enc)
			}
		}
		if bytes.Contains(enc, []byte("\u2028")) || bytes.Contains(enc, []byte("\u2029")) {
			t.Fatalf("%q encoded with raw U+2028/U+2029: %q", s, enc)
		}
		if !json.Valid(enc) {
			t.Fatalf("%q encoded to invalid JSON %q", s, enc)
		}
		var got string
		if err := json.Unmarshal(enc, &got); err != nil {
			t.Fatalf("%q encoded to %q: %v", s, enc, err)
		}
		if want := replaceInvalid(s); got != want {
			t.Fatalf("%q encoded to %q, decoded to %q, want %q", s, enc, got, want)
		}
		if utf8.ValidString(s) && got != s {
			t.Fatalf("valid %q did not round-trip: %q", s, got)
		}
		if fromBytes := AppendString(nil, []byte(s)); !bytes.Equal(fromBytes, enc) {
			t.Fatalf("%q: []byte form %q, string form %q", s, fromBytes, enc)
		}
		if e := AppendStringOrNull(nil, s); (s == "") != (string(e) == "null") {
			t.Fatalf("AppendStringOrNull(%q) = %s", s, e)
		}
	})
}

// replaceInvalid replaces each byte that is not part of a valid UTF-8
// sequence with U+FFFD.
func replaceInvalid(s string) string {
	var sb strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			sb.WriteRune(utf8.RuneError)
		} else {
			sb.WriteString(s[i : i+size])
		}
		i += size
	}
	return sb.String()
}

func TestAppendNumbers(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{string(AppendFloat(nil, 0.1, 64)), "0.1"},
		{string(AppendFloat(nil, float64(float32(0.1)), 32)), "0.1"},
		{string(AppendFloat(nil, 1e21, 64)), "1e+21"},
		{string(AppendFloat(nil, math.NaN(), 64)), "0"},
		{string(AppendFloat(nil, math.Inf(-1), 32)), "0"},
		{string(AppendUSD(nil, 1.5e-7)), "0.0000001500"},
		{string(AppendUSD(nil, 2)), "2.0000000000"},
		{string(AppendUSD(nil, -1)), "0.0000000000"},
		{string(AppendUSD(nil, math.Inf(1))), "0.0000000000"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
}
