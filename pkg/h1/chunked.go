package h1

import (
	"bufio"
	"errors"
	"io"
)

// ErrChunk is wrapped by errors for malformed chunked framing.
var ErrChunk = errors.New("h1: malformed chunked encoding")

// maxChunkLine bounds a chunk-size line with its extensions.
const maxChunkLine = 4096

// ChunkedReader decodes a chunked body (RFC 9112 §7.1) from r strictly:
// hexadecimal sizes of at most 15 digits, extensions only after a
// semicolon, CRLF after each chunk, trailer fields that parse as field
// lines. Trailer fields are discarded unless Trailers is set.
type ChunkedReader struct {
	r    *bufio.Reader
	left int64 // bytes left in the current chunk
	done bool
	err  error
	// Trailers, when not nil, receives the raw trailer section (field
	// lines with CRLFs, without the final CRLF).
	Trailers *[]byte
}

// NewChunkedReader returns a reader of the chunked body at r.
func NewChunkedReader(r *bufio.Reader) *ChunkedReader { return &ChunkedReader{r: r} }

// Reset makes c read a new body from r.
func (c *ChunkedReader) Reset(r *bufio.Reader) { *c = ChunkedReader{r: r} }

func (c *ChunkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.done {
		return 0, io.EOF
	}
	if c.left == 0 {
		n, err := c.size()
		if err != nil {
			c.err = err
			return 0, err
		}
		if n == 0 {
			if err := c.trailer(); err != nil {
				c.err = err
				return 0, err
			}
			c.done = true
			return 0, io.EOF
		}
		c.left = n
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err == nil && c.left == 0 {
		err = c.crlf()
	}
	if err != nil {
		c.err = err
	}
	return n, err
}

func (c *ChunkedReader) crlf() error {
	b, err := c.r.Peek(2)
	if err != nil {
		return unexpected(err)
	}
	if b[0] != '\r' || b[1] != '\n' {
		return errors.Join(ErrChunk, errors.New("missing CRLF after chunk data"))
	}
	_, _ = c.r.Discard(2)
	return nil
}

// size reads a chunk-size line: chunk-size [ chunk-ext ] CRLF.
func (c *ChunkedReader) size() (int64, error) {
	line, err := c.line()
	if err != nil {
		return 0, err
	}
	var n int64
	i := 0
	for ; i < len(line); i++ {
		d := unhex(line[i])
		if d < 0 {
			break
		}
		if i == 15 {
			return 0, errors.Join(ErrChunk, errors.New("chunk size too large"))
		}
		n = n<<4 | int64(d)
	}
	if i == 0 {
		return 0, errors.Join(ErrChunk, errors.New("missing chunk size"))
	}
	rest := line[i:]
	// chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
	for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
		rest = rest[1:]
	}
	if len(rest) > 0 && rest[0] != ';' {
		return 0, errors.Join(ErrChunk, errors.New("invalid chunk size"))
	}
	for _, b := range rest {
		if !fieldValueByte(b) {
			return 0, errors.Join(ErrChunk, errors.New("invalid chunk extension"))
		}
	}
	return n, nil
}

// line reads one CRLF-terminated line without the CRLF. It is valid
// until the next read.
func (c *ChunkedReader) line() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull || len(line) > maxChunkLine {
		return nil, errors.Join(ErrChunk, errors.New("chunk line too long"))
	}
	if err != nil {
		return nil, unexpected(err)
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, errors.Join(ErrChunk, errors.New("bare LF in chunked framing"))
	}
	return line[:len(line)-2], nil
}

// trailer reads the trailer section up to the empty line.
func (c *ChunkedReader) trailer() error {
	n := 0
	for {
		line, err := c.line()
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
		if n++; n > 100 {
			return errors.Join(ErrChunk, errors.New("too many trailer fields"))
		}
		if _, err := parseField(line, 0); err != nil {
			return errors.Join(ErrChunk, err)
		}
		if c.Trailers != nil {
			*c.Trailers = append(append(*c.Trailers, line...), "\r\n"...)
		}
	}
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// AppendChunkHeader appends the size line of a chunk of n bytes.
func AppendChunkHeader(b []byte, n int) []byte {
	const hexd = "0123456789abcdef"
	var tmp [16]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = hexd[n&0xf]
		n >>= 4
		if n == 0 {
			break
		}
	}
	b = append(b, tmp[i:]...)
	return append(b, '\r', '\n')
}
