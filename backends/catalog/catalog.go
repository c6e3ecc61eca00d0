package catalog

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/accelgate/accelgate/backends"
)

//go:embed profiles.yaml
var embedded []byte

// Catalog is an immutable, ordered set of hardware profiles with unique names.
// It is safe for concurrent use; the profiles it hands out are shared and must
// be treated as read-only.
type Catalog struct {
	profiles []*backends.Profile          // in file order
	byName   map[string]*backends.Profile // name -> profile
}

// file is the top level of a catalog file.
type file struct {
	Profiles []*backends.Profile `yaml:"profiles"`
}

// Parse decodes and checks a catalog file. Decoding is strict: an unknown
// field, a value of the wrong type or a second YAML document is an error. Each
// profile must pass backends.Profile.Validate, name the source of its price
// (price_source), and have a name no earlier profile has. All problems found
// are reported together; each names the profile and the field.
func Parse(data []byte) (*Catalog, error) {
	// A node tree first: syntax errors, and the line spans used to say which
	// profile a decode error belongs to.
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	spans := profileSpans(&root)

	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f file
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("catalog: empty file")
		}
		return nil, fmt.Errorf("catalog: %w", attribute(err, spans))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("catalog: more than one YAML document")
	}
	if len(f.Profiles) == 0 {
		return nil, errors.New("catalog: profiles: no profiles")
	}

	c := &Catalog{byName: make(map[string]*backends.Profile, len(f.Profiles))}
	var errs []error
	for i, p := range f.Profiles {
		if p == nil {
			errs = append(errs, fmt.Errorf("profiles[%d]: empty entry", i))
			continue
		}
		if err := p.Validate(); err != nil {
			errs = append(errs, err)
		}
		if p.PriceSource == "" {
			errs = append(errs, fmt.Errorf("profile %q: price_source: missing", p.Name))
		}
		if p.Name == "" {
			continue // reported by Validate
		}
		if _, dup := c.byName[p.Name]; dup {
			errs = append(errs, fmt.Errorf("profile %q: name: duplicate (profiles[%d])", p.Name, i))
			continue
		}
		c.byName[p.Name] = p
		c.profiles = append(c.profiles, p)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	return c, nil
}

var (
	defaultOnce sync.Once
	defaultCat  *Catalog
)

// Default returns the catalog embedded in the binary (profiles.yaml), parsed
// once. It panics if the embedded file is invalid, which the package's tests
// rule out.
func Default() *Catalog {
	defaultOnce.Do(func() {
		c, err := Parse(embedded)
		if err != nil {
			panic(fmt.Sprintf("backends/catalog: embedded profiles.yaml is invalid: %v", err))
		}
		defaultCat = c
	})
	return defaultCat
}

// Get returns the profile with the given name, and whether there is one.
func (c *Catalog) Get(name string) (*backends.Profile, bool) {
	p, ok := c.byName[name]
	return p, ok
}

// Names returns the profile names in file order. The slice is the caller's.
func (c *Catalog) Names() []string {
	names := make([]string, len(c.profiles))
	for i, p := range c.profiles {
		names[i] = p.Name
	}
	return names
}

// Profiles returns the profiles in file order. The slice is the caller's; the
// profiles are shared and read-only.
func (c *Catalog) Profiles() []*backends.Profile {
	return append([]*backends.Profile(nil), c.profiles...)
}

// span is the line range [first, last] of one entry of the profiles list.
type span struct {
	name        string
	first, last int // last 0: to the end of the file
}

// profileSpans finds the line range of each entry of the top-level profiles
// list, so that a decode error can name the profile it belongs to.
func profileSpans(root *yaml.Node) []span {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return nil
	}
	top := root.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil
	}
	var list *yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "profiles" {
			list = top.Content[i+1]
		}
	}
	if list == nil || list.Kind != yaml.SequenceNode {
		return nil
	}
	spans := make([]span, len(list.Content))
	for i, item := range list.Content {
		spans[i].first = item.Line
		if i > 0 {
			spans[i-1].last = item.Line - 1
		}
		if item.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(item.Content); j += 2 {
				if item.Content[j].Value == "name" {
					spans[i].name = item.Content[j+1].Value
				}
			}
		}
	}
	return spans
}

var lineRE = regexp.MustCompile(`^line (\d+): `)

// attribute prefixes each message of a yaml.TypeError with the profile whose
// lines it points into ("line 12: field foo not found in type
// backends.Profile" becomes `profile "l4": line 12: field foo not found ...`).
func attribute(err error, spans []span) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	errs := make([]error, 0, len(te.Errors))
	for _, msg := range te.Errors {
		errs = append(errs, errors.New(whose(msg, spans)+msg))
	}
	return errors.Join(errs...)
}

// whose returns the `profile "name": ` prefix for a yaml error message, or ""
// when the message's line is outside every profile.
func whose(msg string, spans []span) string {
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		return ""
	}
	line, err := strconv.Atoi(m[1])
	if err != nil {
		return ""
	}
	for i, s := range spans {
		if line >= s.first && (s.last == 0 || line <= s.last) {
			if s.name == "" {
				return fmt.Sprintf("profiles[%d]: ", i)
			}
			return fmt.Sprintf("profile %q: ", s.name)
		}
	}
	return ""
}
