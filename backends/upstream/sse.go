package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"sync"
)

const sseBufSize = 16 << 10

// sseReader reads server-sent events incrementally and returns the data of
// each event (its "data:" lines joined with "\n"). Comments, event names, ids
// and retry fields are ignored.
type sseReader struct {
	br   *bufio.Reader
	line []byte // a line longer than br's buffer
	data []byte // the current event's data
	eof  bool
}

var sseReaders = sync.Pool{New: func() any {
	return &sseReader{br: bufio.NewReaderSize(nil, sseBufSize)}
}}

func acquireSSEReader(r io.Reader) *sseReader {
	s := sseReaders.Get().(*sseReader)
	s.br.Reset(r)
	s.eof = false
	return s
}

func releaseSSEReader(s *sseReader) {
	s.br.Reset(nil)
	if cap(s.line) > 1<<20 {
		s.line = nil
	}
	if cap(s.data) > 1<<20 {
		s.data = nil
	}
	sseReaders.Put(s)
}

// next returns the data of the next event, valid until the following call, or
// io.EOF at the end of the body (a last event without its blank line is still
// returned).
func (s *sseReader) next() ([]byte, error) {
	s.data = s.data[:0]
	have := false
	for {
		line, err := s.readLine()
		if err != nil {
			if err == io.EOF && have {
				return s.data, nil
			}
			return nil, err
		}
		if len(line) == 0 {
			if have {
				return s.data, nil
			}
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		if string(field) != "data" {
			continue
		}
		if have {
			s.data = append(s.data, '\n')
		}
		s.data = append(s.data, value...)
		have = true
	}
}

// readLine returns the next line without its line ending, valid until the next
// call.
func (s *sseReader) readLine() ([]byte, error) {
	if s.eof {
		return nil, io.EOF
	}
	line, err := s.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		s.line = append(s.line[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = s.br.ReadSlice('\n')
			s.line = append(s.line, line...)
		}
		line = s.line
	}
	if err != nil {
		if err != io.EOF {
			return nil, err
		}
		if len(line) == 0 {
			return nil, io.EOF
		}
		s.eof = true // a last line without its newline
	}
	line = bytes.TrimSuffix(line, []byte{'\n'})
	line = bytes.TrimSuffix(line, []byte{'\r'})
	return line, nil
}
