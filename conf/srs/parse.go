// Package srs reads an SRS config file (nginx-style directives) and turns it into the
// equivalent peer config, so an operator moving off an SRS cluster starts from the files
// they have (`peer conf import`). It imports nothing from peer but conf's flag names.
package srs

import (
	"fmt"
	"io"
	"strings"
)

// Directive is one `name args... ;` or `name args... { children }` of an SRS config.
type Directive struct {
	Name     string
	Args     []string
	Line     int
	Children []*Directive
	Block    bool
}

// Arg returns argument i, or "".
func (d *Directive) Arg(i int) string {
	if i < len(d.Args) {
		return d.Args[i]
	}
	return ""
}

// Limits on what Parse accepts: a real SRS config is a few KB and a few levels deep.
const (
	maxSize  = 1 << 20
	maxDepth = 16
)

// Note is something the parser or the import has to say about a line.
type Note struct {
	Line int
	Msg  string
}

// Parse reads an SRS config. It is lenient where SRS's own files are (the seed's files
// miss a ';' after `pid`): a directive whose arguments run onto a new line that starts
// with a word is split there, with a note. Depth and size are bounded.
func Parse(r io.Reader) ([]*Directive, []Note, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxSize+1))
	if err != nil {
		return nil, nil, err
	}
	if len(data) > maxSize {
		return nil, nil, fmt.Errorf("line 1: file larger than %d bytes", maxSize)
	}
	p := &parser{toks: tokenize(string(data))}
	dirs, err := p.block(0)
	if err != nil {
		return nil, p.notes, err
	}
	if p.pos < len(p.toks) {
		return nil, p.notes, fmt.Errorf("line %d: unexpected '}'", p.toks[p.pos].line)
	}
	return dirs, p.notes, nil
}

type token struct {
	text  string
	line  int
	punct bool // ';', '{' or '}'
	first bool // the first token on its line
}

func tokenize(s string) []token {
	var toks []token
	line, lastLine := 1, 0
	emit := func(t token) {
		t.first = t.line != lastLine
		lastLine = t.line
		toks = append(toks, t)
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == ';' || c == '{' || c == '}':
			emit(token{text: string(c), line: line, punct: true})
			i++
		case c == '"' || c == '\'':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\n' {
					line++
				}
				j++
			}
			emit(token{text: s[i+1 : min(j, len(s))], line: line})
			i = j + 1
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\r\n;{}#", rune(s[j])) {
				j++
			}
			emit(token{text: s[i:j], line: line})
			i = j
		}
	}
	return toks
}

type parser struct {
	toks  []token
	pos   int
	notes []Note
}

// block reads directives until a '}' (left for the caller) or the end.
func (p *parser) block(depth int) ([]*Directive, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("line %d: blocks nested deeper than %d", p.toks[p.pos].line, maxDepth)
	}
	var dirs []*Directive
	for p.pos < len(p.toks) {
		t := p.toks[p.pos]
		if t.punct {
			if t.text == "}" {
				return dirs, nil
			}
			p.pos++ // a stray ';'
			continue
		}
		d := &Directive{Name: t.text, Line: t.line}
		p.pos++
	args:
		for p.pos < len(p.toks) {
			a := p.toks[p.pos]
			switch {
			case a.text == ";" && a.punct:
				p.pos++
				break args
			case a.text == "{" && a.punct:
				p.pos++
				children, err := p.block(depth + 1)
				if err != nil {
					return nil, err
				}
				if p.pos >= len(p.toks) {
					return nil, fmt.Errorf("line %d: block of %q is not closed", d.Line, d.Name)
				}
				p.pos++ // '}'
				d.Children, d.Block = children, true
				break args
			case a.text == "}" && a.punct:
				p.notes = append(p.notes, Note{d.Line, fmt.Sprintf("%s: missing ';'", d.Name)})
				break args
			case a.first && len(d.Args) > 0 && !a.punct:
				// A new line starting with a word after arguments: SRS would read it as more
				// arguments; it is a directive whose ';' was left out.
				p.notes = append(p.notes, Note{d.Line, fmt.Sprintf("%s: missing ';' at the end of the line", d.Name)})
				break args
			default:
				d.Args = append(d.Args, a.text)
				p.pos++
			}
		}
		dirs = append(dirs, d)
	}
	return dirs, nil
}
