package conf

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/alecthomas/kong"
	"go.yaml.in/yaml/v3"
)

// maxFileSize bounds a config file; a real one is a few KB.
const maxFileSize = 1 << 20

// File is a checked config file: YAML whose top-level keys are the flags of `peer run`
// (the same names, e.g. `max-connections: 1000`, `hls-fragment: 2s`), with comments,
// plus an `apps:` section of per-app settings (apps.go). Flags and PEER_* variables
// override the node-wide settings it makes, never an app's.
type File struct {
	Path   string
	values map[string]string // flag name -> value as the flag would take it
	apps   map[string]AppSettings
}

// FileError is one problem in a config file, at a line.
type FileError struct {
	Path string
	Line int
	Msg  string
}

func (e FileError) Error() string { return fmt.Sprintf("%s:%d: %s", e.Path, e.Line, e.Msg) }

// FileErrors is every problem found in a file, in line order.
type FileErrors []FileError

func (es FileErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// LoadFile reads and checks a config file.
func LoadFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseFile(path, f)
}

// ParseFile checks a config file read from r: every key must be a flag of `peer run` or
// `apps`, and every value must parse as that flag does on the command line (kong's own
// parsers).
// All problems are reported, each as path:line.
func ParseFile(path string, r io.Reader) (*File, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, FileError{path, 1, fmt.Sprintf("file larger than %d bytes", maxFileSize)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, FileError{path, yamlErrorLine(err), "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	file := &File{Path: path, values: map[string]string{}}
	if len(doc.Content) == 0 { // empty or only comments
		return file, nil
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, FileError{path, top.Line, "want a mapping of settings (key: value)"}
	}
	flags := runFlags()
	var errs FileErrors
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		fl, ok := flags[k.Value]
		switch {
		case k.Value == appsKey && file.apps == nil:
			apps, appErrs := parseApps(path, v, flags)
			errs = append(errs, appErrs...)
			file.apps = apps
			if file.apps == nil {
				file.apps = map[string]AppSettings{}
			}
		case k.Value == appsKey:
			errs = append(errs, FileError{path, k.Line, "apps is set twice"})
		case !ok:
			errs = append(errs, FileError{path, k.Line, fmt.Sprintf("unknown setting %q%s", k.Value, suggest(k.Value, flags))})
		case file.values[k.Value] != "":
			errs = append(errs, FileError{path, k.Line, fmt.Sprintf("%s is set twice", k.Value)})
		default:
			value, err := scalarOrList(fl, v)
			if err == nil {
				err = checkValue(fl, value)
			}
			if err != nil {
				errs = append(errs, FileError{path, v.Line, fmt.Sprintf("%s: %v", k.Value, err)})
				continue
			}
			file.values[k.Value] = value
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return file, nil
}

// appsKey is the top-level key of the per-app settings.
const appsKey = "apps"

// Set reports the node-wide settings the file makes, by flag name.
func (f *File) Set() map[string]string { return f.values }

// Apps is the file's per-app settings, by app name (empty without an apps section).
func (f *File) Apps() map[string]AppSettings { return f.apps }

// Resolver hands the file's values to kong for the flags not given on the command line or
// in the environment.
func (f *File) Resolver() kong.Resolver {
	return kong.ResolverFunc(func(_ *kong.Context, _ *kong.Path, flag *kong.Flag) (any, error) {
		for _, env := range flag.Envs {
			if _, set := os.LookupEnv(env); set {
				return nil, nil // PEER_* wins over the file
			}
		}
		if v, ok := f.values[flag.Name]; ok {
			return v, nil
		}
		return nil, nil
	})
}

// Loader reads --config for kong (its Load is a kong.ConfigurationLoader) and keeps the
// file, whose apps section no flag carries: after parsing, Apps fills Node.Apps. The file
// is checked as a whole before the node starts, so a bad file fails the start with every
// problem listed.
type Loader struct {
	file *File
}

// Load checks the file and returns its resolver.
func (l *Loader) Load(r io.Reader) (kong.Resolver, error) {
	name := "config"
	if f, ok := r.(*os.File); ok {
		name = f.Name()
	}
	file, err := ParseFile(name, r)
	if err != nil {
		return nil, err
	}
	l.file = file
	return file.Resolver(), nil
}

// Apps is the loaded file's per-app settings; nil without --config.
func (l *Loader) Apps() map[string]AppSettings {
	if l.file == nil {
		return nil
	}
	return l.file.apps
}

// runFlags is the flags of conf.Node by name, read from the struct the CLI uses.
func runFlags() map[string]*kong.Flag {
	var holder struct {
		Node `embed:""`
	}
	parser, err := kong.New(&holder, kong.Vars{"hostname": "peer"}, kong.Exit(func(int) {}))
	if err != nil {
		panic("conf: flags do not build: " + err.Error())
	}
	flags := map[string]*kong.Flag{}
	for _, fl := range parser.Model.Flags {
		if fl.Name != "help" {
			flags[fl.Name] = fl
		}
	}
	return flags
}

// scalarOrList reads a value: a scalar, or for a list flag (hook URLs) a sequence of
// scalars, joined as the flag would take them on the command line.
func scalarOrList(fl *kong.Flag, v *yaml.Node) (string, error) {
	if v.Kind == yaml.ScalarNode {
		return v.Value, nil
	}
	if v.Kind != yaml.SequenceNode || !fl.IsSlice() {
		return "", errors.New("want a single value")
	}
	items := make([]string, 0, len(v.Content))
	for _, it := range v.Content {
		if it.Kind != yaml.ScalarNode || strings.Contains(it.Value, string(fl.Tag.Sep)) {
			return "", fmt.Errorf("line %d: want a list of plain values", it.Line)
		}
		items = append(items, it.Value)
	}
	return strings.Join(items, string(fl.Tag.Sep)), nil
}

// checkValue parses s as the flag would, into a scratch value of its type.
func checkValue(fl *kong.Flag, s string) error {
	_, err := decodeValue(fl, s)
	return err
}

// decodeValue parses s as the flag would and returns the value, of the flag's type.
func decodeValue(fl *kong.Flag, s string) (reflect.Value, error) {
	if fl.Enum != "" && !slices.Contains(strings.Split(fl.Enum, ","), s) {
		return reflect.Value{}, fmt.Errorf("%q is not one of %s", s, fl.Enum)
	}
	scratch := reflect.New(fl.Target.Type()).Elem()
	err := fl.Mapper.Decode(&kong.DecodeContext{Value: fl.Value, Scan: kong.Scan(s)}, scratch)
	var pe *kong.ParseError
	if errors.As(err, &pe) {
		err = pe.Unwrap()
	}
	return scratch, err
}

// suggest names the closest known setting, for a typo.
func suggest(key string, flags map[string]*kong.Flag) string {
	names := make([]string, 0, len(flags))
	for n := range flags {
		names = append(names, n)
	}
	sort.Strings(names)
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(strings.ReplaceAll(key, "_", "-"), n); d < bestD {
			best, bestD = n, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// yamlErrorLine digs the line out of a yaml.v3 syntax error ("yaml: line 3: ...").
func yamlErrorLine(err error) int {
	var line int
	if _, scanErr := fmt.Sscanf(strings.TrimPrefix(err.Error(), "yaml: "), "line %d:", &line); scanErr == nil {
		return line
	}
	return 1
}
