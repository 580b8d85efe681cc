package input

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// rawDoc is one document of a stream, not yet decoded.
type rawDoc struct {
	data []byte
	doc  int  // 1-based
	line int  // 1-based line of the document's first byte
	json bool // data is one JSON value rather than YAML
}

// split cuts a stream into documents. A stream whose first non-blank byte
// is '{' is read as concatenated JSON objects; if its first value is not
// valid JSON it is read as YAML instead (a YAML flow mapping also starts
// with '{').
func split(source string, data []byte) ([]rawDoc, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // UTF-8 byte order mark
	if first := bytes.TrimLeft(data, " \t\r\n"); len(first) > 0 && first[0] == '{' {
		docs, err := splitJSON(source, data)
		if err == nil {
			return docs, nil
		}
		if !errors.Is(err, errFirstValue) {
			return nil, err
		}
	}
	return splitYAML(source, data)
}

var errFirstValue = errors.New("first JSON value is invalid")

func splitJSON(source string, data []byte) ([]rawDoc, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var docs []rawDoc
	lines := lineCounter{data: data}
	for n := 1; ; n++ {
		start := int(dec.InputOffset())
		for start < len(data) && isSpace(data[start]) {
			start++
		}
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err == io.EOF {
			return docs, nil
		}
		origin := Origin{Source: source, Doc: n, Line: lines.at(start), Item: -1}
		if err != nil {
			if n == 1 {
				return nil, errFirstValue
			}
			return nil, &DecodeError{Origin: origin, Err: fmt.Errorf("reading JSON: %w", err)}
		}
		docs = append(docs, rawDoc{data: raw, doc: n, line: origin.Line, json: true})
	}
}

func splitYAML(source string, data []byte) ([]rawDoc, error) {
	var docs []rawDoc
	start, startLine, line := 0, 1, 1
	n := 0
	sawSeparator := false
	emit := func(end int) {
		chunk := data[start:end]
		// A stream that opens with "---" has no document before it.
		if n == 0 && blank(chunk) && sawSeparator {
			return
		}
		n++
		docs = append(docs, rawDoc{data: chunk, doc: n, line: startLine})
	}
	for off := 0; off < len(data); line++ {
		end, next := len(data), len(data)
		if i := bytes.IndexByte(data[off:], '\n'); i >= 0 {
			end, next = off+i, off+i+1
		}
		text := bytes.TrimRight(data[off:end], "\r")
		if isSep, rest := separator(text); isSep {
			sawSeparator = true
			emit(off)
			if rest != "" {
				return nil, &DecodeError{
					Origin: Origin{Source: source, Doc: n + 1, Line: line, Item: -1},
					Err:    fmt.Errorf("content after the document separator is not supported: %q", rest),
				}
			}
			start, startLine = next, line+1
		}
		off = next
	}
	emit(len(data))
	return docs, nil
}

// separator reports whether line is a "---" document separator and returns
// anything but whitespace and a comment that follows it.
func separator(line []byte) (bool, string) {
	if !bytes.HasPrefix(line, []byte("---")) {
		return false, ""
	}
	rest := line[3:]
	if len(rest) > 0 && rest[0] != ' ' && rest[0] != '\t' {
		return false, "" // e.g. "----" or "---foo" is content, not a separator
	}
	rest = bytes.TrimSpace(rest)
	if len(rest) == 0 || rest[0] == '#' {
		return true, ""
	}
	return true, string(rest)
}

// blank reports whether a chunk holds only whitespace and comments.
func blank(chunk []byte) bool {
	for _, l := range bytes.Split(chunk, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) > 0 && l[0] != '#' {
			return false
		}
	}
	return true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// lineCounter converts increasing byte offsets into 1-based line numbers
// in linear total time.
type lineCounter struct {
	data []byte
	off  int
	line int
}

func (c *lineCounter) at(off int) int {
	if c.line == 0 {
		c.line = 1
	}
	if off > len(c.data) {
		off = len(c.data)
	}
	if off < c.off {
		c.off, c.line = 0, 1
	}
	c.line += bytes.Count(c.data[c.off:off], []byte("\n"))
	c.off = off
	return c.line
}
