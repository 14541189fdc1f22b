package protocol

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ErrLineTooLong is returned by a Decoder for a line longer than MaxLine.
var ErrLineTooLong = errors.New("line too long")

// Decoder reads newline-delimited JSON lines of at most MaxLine bytes.
type Decoder struct {
	r *bufio.Reader
}

// NewDecoder returns a Decoder reading from r. Its buffer is small because
// the shim keeps one per connection, for the connection's life, and every
// line but a state reply with many annotations fits; a longer line is read
// in pieces.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{r: bufio.NewReaderSize(r, 512)}
}

// Line returns the next line without its newline. A final line without a
// newline is a half-sent request and gives io.ErrUnexpectedEOF.
//
// It looks at what each read brought, never waiting for more than one
// read: a line that passes MaxLine is refused at the read that takes it
// there, although its sender may send no more and wait for the answer.
// (bufio's ReadSlice would wait for a full buffer or a newline first, so
// a line at most a buffer over MaxLine, unfinished, waited for the idle
// limit: found by make fuzz-live.)
func (d *Decoder) Line() ([]byte, error) {
	var line []byte
	for {
		if _, err := d.r.Peek(1); err != nil { // reads when nothing is buffered
			if errors.Is(err, io.EOF) && len(line) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		buf, _ := d.r.Peek(d.r.Buffered())
		end := bytes.IndexByte(buf, '\n')
		n := len(buf)
		if end >= 0 {
			n = end + 1
		}
		if len(line)+n > MaxLine {
			return nil, ErrLineTooLong
		}
		line = append(line, buf[:n]...)
		d.r.Discard(n)
		if end >= 0 {
			return line[:len(line)-1], nil
		}
	}
}

// Decode reads the next line into v.
func (d *Decoder) Decode(v any) error {
	line, err := d.Line()
	if err != nil {
		return err
	}
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("malformed line: %w", err)
	}
	return nil
}

// Marshal encodes v as one line, newline included, exactly as json.Marshal
// would.
func Marshal(v any) ([]byte, error) {
	b, err := appendJSON(nil, v)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func jsonUnmarshal(line []byte, v any) error {
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("malformed line: %w", err)
	}
	return nil
}
