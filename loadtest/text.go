package loadtest

import (
	"math/rand/v2"
	"strings"
	"sync"
)

// Generated text.
//
// Prompts, chat messages and embedding inputs are substrings of one large
// corpus of English words, built once per process from a fixed seed (the same
// in every run and every version), so producing the text of an Item costs a
// random draw and two slice lookups and allocates nothing.
//
// Token accounting: the corpus is a sequence of pieces — a word preceded by a
// space (" word") or a punctuation mark ("." or ","). Every word in the
// vocabulary below was chosen because it is a single token in OpenAI's
// cl100k_base BPE both with and without its leading space, and the BPE's
// pre-tokenizer splits at each piece, so a text of n pieces is n cl100k tokens
// (text_test.go checks this against the emulator's tokenizer). Llama 3's
// tokenizer extends cl100k, so counts there match closely. Sentences are 5–16
// words with an occasional comma, which makes about 1.1 tokens per word.
// Item.InputTokens counts the contents only, not the chat template's markers.

// corpusPieces is the corpus's length in pieces (tokens). Starts are drawn
// uniformly, so two unrelated prompts share a prefix only when they start at
// the same piece (probability 1 in ~10⁶ per pair).
const corpusPieces = 1 << 20

// maxTextTokens is the longest text a single message, prompt or input can be.
const maxTextTokens = corpusPieces / 2

// vocabulary: common English words, roughly by frequency, each one cl100k
// token with and without a leading space.
const vocabulary = `
the of and to a in is that for it as was with be by on not he this are or his from at which but
have an they you were her she there one all we their been has will would who more if no out so
what up can said about into than them only other new some could time these two may then first
any my now such like our over man me even most made after also did many before must through
back years where much your way well down should because each just those people how too little
state good very make world still own see men work long get here between both life being under
never day same another know while last might us great old year off come since against go came
right used take three states few house use during without again place around however home small
found thought went say part once general high upon school every does got left number course war
until always away something fact though water less public put think almost hand far took head
yet government system better set nothing night end why called find going look later point next
program city business give group young days let room side social given present order national
possible rather second face per among form often early white case large big need four within
felt along children best church ever least power development light thing family interest want
members mind country area others done turned although open problem sense kind thus help means
things whole service field words plan mean real full hard report change voice model data
request server network memory queue batch token cost price test load cluster node region cache
engine query value level rate speed track record answer question table paper music story river
window market letter travel animal summer winter simple clear quiet strong quick bright happy
final major local human natural common recent modern ready short single special current future
central private free sure able close show play move live bring write provide sit stand lose pay
meet include continue learn lead watch follow stop create read allow add grow offer remember
love consider appear buy wait serve die send expect build stay fall cut reach kill remain
suggest raise pass sell require return explain hope develop carry break receive agree support
hit produce eat cover catch draw choose cause listen drive plant hold fly dream walk cook clean
sleep fight pull push wish cry inside outside above below near today soon already quite perhaps
maybe really mostly probably finally usually especially apple bread stone glass metal wood
cloud storm rain snow fire shadow color sound word name game film book song dance photo video
image brain heart blood body skin hair eye ear mouth foot arm leg friend mother father child
teacher doctor student worker player leader member author artist driver judge forest street
road bridge tower castle office station airport hospital library restaurant hotel shop bank
park farm factory company industry money income budget tax profit energy oil gas heat pressure
wave signal wire machine computer phone screen camera software hardware code line file folder
page link message email chat online digital global history science culture nature language law
rule peace battle danger health medicine food meal coffee tea wine beer salt fish egg rice
fruit flower tree grass leaf seed root`

type textCorpus struct {
	s   string   // the corpus
	off []uint32 // off[i] is where piece i starts, | punctuation for a punctuation mark; off[corpusPieces] = len(s)
}

// punctuation marks a punctuation piece in textCorpus.off, so finding a word
// start needs no look at the text itself.
const punctuation = 1 << 31

var corpus = sync.OnceValue(buildCorpus)

func buildCorpus() *textCorpus {
	words := strings.Fields(vocabulary)
	r := rand.New(rand.NewPCG(0x6163_6365_6c67_6174, 0x636f_7270_7573)) // fixed: the corpus never changes
	zipf := rand.NewZipf(r, 1.1, 8, uint64(len(words)-1))
	var sb strings.Builder
	sb.Grow(corpusPieces * 6)
	off := make([]uint32, 0, corpusPieces+1)
	for len(off) < corpusPieces {
		n := 5 + r.IntN(12) // words in the sentence
		for i := 0; i < n && len(off) < corpusPieces; i++ {
			off = append(off, uint32(sb.Len()))
			sb.WriteByte(' ')
			sb.WriteString(words[zipf.Uint64()])
			if i > 1 && i < n-2 && r.IntN(12) == 0 && len(off) < corpusPieces {
				off = append(off, uint32(sb.Len())|punctuation)
				sb.WriteByte(',')
			}
		}
		if len(off) < corpusPieces {
			off = append(off, uint32(sb.Len())|punctuation)
			sb.WriteByte('.')
		}
	}
	off = append(off, uint32(sb.Len()))
	return &textCorpus{s: sb.String(), off: off}
}

// textAt returns the text of n tokens starting at piece start (moved forward
// past punctuation so the text starts with a word), without the leading space.
func (c *textCorpus) textAt(start, n int) string {
	if n <= 0 {
		return ""
	}
	o := c.off[start]
	if o&punctuation != 0 {
		start++
		o = c.off[start]
	}
	return c.s[o+1 : c.off[start+n]&^punctuation]
}

// text returns a text of n tokens (at most maxTextTokens) from a random place
// in the corpus.
func (c *textCorpus) text(r *rand.Rand, n int) string {
	if n <= 0 {
		return ""
	}
	n = min(n, maxTextTokens)
	return c.textAt(r.IntN(corpusPieces-n-1), n)
}

// texts fills out with consecutive texts of the corpus (like the chunks of one
// document), one per length in lens, from a random place; their lengths must
// sum to at most maxTextTokens.
func (c *textCorpus) texts(r *rand.Rand, lens []int, out []string) {
	total := 0
	for _, n := range lens {
		total += n
	}
	at := r.IntN(corpusPieces - total - len(lens) - 1)
	for i, n := range lens {
		if n <= 0 {
			out[i] = ""
			continue
		}
		if c.off[at]&punctuation != 0 {
			at++
		}
		out[i] = c.textAt(at, n)
		at += n
	}
}
