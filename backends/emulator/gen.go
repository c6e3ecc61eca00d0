package emulator

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"
	"sync"

	"github.com/tiktoken-go/tokenizer"

	"github.com/accelgate/accelgate/backends"
)

// The tokenizer is OpenAI's cl100k_base BPE, embedded in the binary and loaded
// once. The emulated models are Llama-3-class; Llama 3's tokenizer is a 128k
// BPE built on tiktoken that shares cl100k's 100k pieces and adds 28k more, so
// counts here are close to a real Llama-3 server's but not identical
// (typically within a few percent on English text).
var codec = sync.OnceValue(func() tokenizer.Codec {
	c, err := tokenizer.Get(tokenizer.Cl100kBase)
	if err != nil {
		panic(fmt.Sprintf("emulator: loading cl100k_base: %v", err)) // embedded data: cannot fail
	}
	return c
})

// CountTokens returns the number of cl100k_base tokens in s.
func CountTokens(s string) int {
	n, err := codec().Count(s)
	if err != nil {
		return (len(s) + 3) / 4
	}
	return n
}

func encodePieces(s string) []string {
	_, pieces, err := codec().Encode(s)
	if err != nil || strings.Join(pieces, "") != s {
		// Cannot happen for valid UTF-8 in the default error mode; fall back
		// to bytes so the pieces still concatenate to s.
		pieces = pieces[:0]
		for i := 0; i < len(s); i += 4 {
			pieces = append(pieces, s[i:min(i+4, len(s))])
		}
	}
	return pieces
}

// Llama-3 chat template:
//
//	<|begin_of_text|>{for each message: <|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>}
//	<|start_header_id|>assistant<|end_header_id|>\n\n
//
// Special markers count one token each; "\n\n" is one token.
const (
	templateBOS        = 1 // <|begin_of_text|>
	templatePerMessage = 4 // <|start_header_id|>, <|end_header_id|>, "\n\n", <|eot_id|>
	templateAssistant  = 4 // <|start_header_id|>assistant<|end_header_id|>\n\n
)

// chatPrompt renders the messages with the Llama-3 chat template and counts
// the prompt's tokens (role names and contents with the BPE, markers as one
// token each).
func chatPrompt(msgs []backends.Message) (text string, tokens int) {
	var sb strings.Builder
	sb.WriteString("<|begin_of_text|>")
	tokens = templateBOS + templateAssistant
	for _, m := range msgs {
		sb.WriteString("<|start_header_id|>")
		sb.WriteString(m.Role)
		sb.WriteString("<|end_header_id|>\n\n")
		sb.WriteString(m.Content)
		sb.WriteString("<|eot_id|>")
		tokens += templatePerMessage + CountTokens(m.Role) + CountTokens(m.Content)
	}
	sb.WriteString("<|start_header_id|>assistant<|end_header_id|>\n\n")
	return sb.String(), tokens
}

// completionPromptTokens counts a completions prompt: the BOS token a Llama
// server prepends plus the prompt's BPE tokens.
func completionPromptTokens(p string) int { return templateBOS + CountTokens(p) }

// Natural output lengths are log-uniform between these bounds (median ≈ 90).
const (
	minNaturalTokens = 20
	maxNaturalTokens = 400
)

var words = strings.Fields(`the a of and to in is that it for on with as was by at from this be are or an
which have has not but all can more one time people model system data each new first also other only
used when where after before between through during about under over into most many such these those
some very well could would should might their there then than them they we you our your its his her
network memory request latency token batch queue server cluster signal energy market river city garden
window morning evening history science language music light water stone forest mountain ocean island
value result method process design structure pattern question answer reason example problem solution
small large early late simple clear quiet bright careful steady rapid gentle strong open common certain
make take give find keep hold bring carry follow build change measure explain describe consider improve
often always sometimes rarely already still again together instead perhaps rather quite nearly almost`)

func hashString(h uint64, s string) uint64 {
	f := fnv.New64a()
	var b [8]byte
	for i := range b {
		b[i] = byte(h >> (8 * i))
	}
	f.Write(b[:])
	f.Write([]byte(s))
	return f.Sum64()
}

// naturalText is the emulated model's answer to prompt for (seed, index):
// deterministic, English-like sentences whose length in tokens varies
// log-uniformly between about 20 and 400, ending at a sentence end.
func naturalText(prompt string, seed int64, index int) string {
	r := rand.New(rand.NewPCG(hashString(uint64(seed), prompt), uint64(index)*0x9e3779b97f4a7c15+1))
	target := int(math.Round(minNaturalTokens * math.Pow(maxNaturalTokens/minNaturalTokens, r.Float64())))
	var sb strings.Builder
	n := 0
	for n < target {
		if sb.Len() > 0 {
			if r.IntN(6) == 0 {
				sb.WriteString("\n\n")
			} else {
				sb.WriteByte(' ')
			}
		}
		nw := 5 + r.IntN(14)
		for w := range nw {
			word := words[r.IntN(len(words))]
			if w == 0 {
				sb.WriteString(strings.ToUpper(word[:1]))
				sb.WriteString(word[1:])
			} else {
				sb.WriteByte(' ')
				sb.WriteString(word)
			}
			if w > 1 && w < nw-2 && r.IntN(9) == 0 {
				sb.WriteByte(',')
				n++
			}
			n++
		}
		sb.WriteByte('.')
		n++
	}
	return sb.String()
}

// genChoice is one generated choice: what the sequence produces token by token.
type genChoice struct {
	text   string
	pieces []string // visible text of each generated token; they concatenate to text
	finish string
}

// makeChoice generates choice index for prompt and applies the limits: at most
// limit tokens (0: no limit; finish_reason "length" when it cuts), then the
// stop sequences (the text ends before the first one to complete; the tokens
// that produced it were generated but are not shown; finish_reason "stop").
func makeChoice(prompt string, seed int64, index, limit int, stop []string) genChoice {
	pieces := encodePieces(naturalText(prompt, seed, index))
	finish := "stop"
	if limit > 0 && len(pieces) > limit {
		pieces, finish = pieces[:limit], "length"
	}
	text := strings.Join(pieces, "")
	cut, end := -1, -1
	for _, s := range stop {
		if s == "" {
			continue
		}
		if i := strings.Index(text, s); i >= 0 && (end < 0 || i+len(s) < end || i+len(s) == end && i < cut) {
			cut, end = i, i+len(s)
		}
	}
	if cut >= 0 {
		finish = "stop"
		off := 0
		for k, p := range pieces {
			lo, hi := min(off, cut), min(off+len(p), cut)
			pieces[k] = text[lo:hi]
			off += len(p)
			if off >= end {
				pieces = pieces[:k+1]
				break
			}
		}
		text = text[:cut]
	}
	if len(pieces) == 0 {
		pieces = []string{""}
	}
	return genChoice{text: text, pieces: pieces, finish: finish}
}

// embedding returns a deterministic unit vector of dim floats for text.
func embedding(text string, dim int) []float32 {
	r := rand.New(rand.NewPCG(hashString(0x656d62, text), uint64(len(text))))
	v := make([]float64, dim)
	var sum float64
	for i := range v {
		v[i] = r.NormFloat64()
		sum += v[i] * v[i]
	}
	inv := 1 / math.Sqrt(sum)
	out := make([]float32, dim)
	for i, x := range v {
		out[i] = float32(x * inv)
	}
	return out
}

// logits returns deterministic logits for item of a tensor request whose
// payload hashes to h: small noise with one clearly winning class.
func logits(h uint64, item, classes int) []float32 {
	r := rand.New(rand.NewPCG(h, uint64(item)+1))
	out := make([]float32, classes)
	for i := range out {
		out[i] = float32(r.NormFloat64())
	}
	out[r.IntN(classes)] += 8
	return out
}
