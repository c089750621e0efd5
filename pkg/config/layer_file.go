package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	kjson "github.com/knadh/koanf/parsers/json"
	ktoml "github.com/knadh/koanf/parsers/toml/v2"
	kyaml "github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/v2"
	"github.com/pelletier/go-toml/v2"
)

// mainFile resolves the main config file: "" when there is none.
func mainFile(opts LoadOptions) (string, *Error) {
	if opts.File != "" {
		return opts.File, nil
	}
	for _, kv := range opts.Env {
		if v, ok := strings.CutPrefix(kv, EnvConfigFile+"="); ok {
			if v != "" {
				return v, nil
			}
			break // the first one wins, as with getenv(3)
		}
	}
	if opts.DefaultFile == "" {
		return "", nil
	}
	if _, err := os.Stat(opts.DefaultFile); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		return "", &Error{Source: opts.DefaultFile, Msg: "cannot read: " + pathErr(err).Error(), Err: err}
	}
	return opts.DefaultFile, nil
}

// pathErr strips the operation and path from an *fs.PathError, since the
// Error's Source already names the file.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

var dropInExts = []string{".yaml", ".yml", ".toml", ".json"}

// listDropIns returns the drop-in files of dir in lexical order. A missing
// directory has none. Hidden files and directories are skipped silently,
// other files with the wrong extension with a warning.
func listDropIns(dir string) (files []string, warns, errs []*Error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, nil
		}
		return nil, nil, []*Error{{Source: dir, Msg: "cannot read drop-in directory: " + pathErr(err).Error(), Err: err}}
	}
	for _, e := range entries { // sorted by name (os.ReadDir)
		name := e.Name()
		path := filepath.Join(dir, name)
		if strings.HasPrefix(name, ".") {
			continue
		}
		fi, err := os.Stat(path) // follows symlinks
		if err != nil {
			errs = append(errs, &Error{Source: path, Msg: "cannot read: " + pathErr(err).Error(), Err: err})
			continue
		}
		if fi.IsDir() {
			continue
		}
		if !slices.Contains(dropInExts, strings.ToLower(filepath.Ext(name))) {
			warns = append(warns, &Error{Source: path, Msg: "ignored: only " + strings.Join(dropInExts, ", ") + " files are read"})
			continue
		}
		files = append(files, path)
	}
	return files, warns, errs
}

// parserFor picks a koanf parser by file extension, and the function
// that maps the file's keys to lines (nil when there is none); YAML is
// the default.
func parserFor(path string) (koanf.Parser, func([]byte) map[string]int) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".toml":
		return ktoml.Parser(), nil
	case ".json":
		return kjson.Parser(), jsonLines
	}
	return kyaml.Parser(), yamlLines
}

// rawBytes is a koanf.Provider of bytes already read, so that the file is
// read once for both koanf and the line map.
type rawBytes []byte

func (b rawBytes) ReadBytes() ([]byte, error) { return b, nil }

func (b rawBytes) Read() (map[string]any, error) {
	return nil, errors.New("rawBytes provider needs a parser")
}

// readFile loads one file into its own koanf and checks it.
func readFile(path string, dropIn bool) (*layer, []*Error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, []*Error{{Source: path, Msg: "cannot read: " + pathErr(err).Error(), Err: err}}
	}
	return parseFile(path, b, dropIn)
}

// parseFile parses and checks the content b of the file path.
func parseFile(path string, b []byte, dropIn bool) (*layer, []*Error) {
	p, lines := parserFor(path)
	k := koanf.New(".")
	if err := k.Load(rawBytes(b), p); err != nil {
		return nil, []*Error{syntaxError(path, b, err)}
	}
	l := &layer{name: path, appendLists: dropIn}
	if lines != nil {
		l.lines = lines(b)
	}
	var c checker
	l.values, _ = c.check("", k.Raw(), configType).(map[string]any)
	l.sets = c.sets
	return l, l.locate(c.errs)
}

// syntaxError locates a parser's error in the file when the parser says
// where it is.
func syntaxError(path string, b []byte, err error) *Error {
	e := &Error{Source: path, Msg: "syntax error: " + err.Error(), Err: err}
	var (
		tomlErr *toml.DecodeError
		jsonSyn *json.SyntaxError
		jsonTyp *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tomlErr):
		e.Line, _ = tomlErr.Position()
	case errors.As(err, &jsonSyn):
		e.Line = lineAt(b, jsonSyn.Offset)
	case errors.As(err, &jsonTyp):
		e.Line = lineAt(b, jsonTyp.Offset)
		e.Msg = "expected a mapping at the top level: " + err.Error()
	}
	// YAML parser errors carry the line in their text ("yaml: line 3:
	// …"); go.yaml.in/yaml/v3 has no structured position for them.
	return e
}

// lineAt is the 1-based line of byte offset off in b.
func lineAt(b []byte, off int64) int {
	off = min(max(off, 0), int64(len(b)))
	return 1 + bytes.Count(b[:off], []byte("\n"))
}
