package cache

import (
	"encoding/binary"
	"errors"
	"net/http"
	"time"
)

// Entry is a stored response.
type Entry struct {
	Status int
	Header http.Header
	Body   []byte
	// RequestTime and ResponseTime are when the request that produced it
	// was sent and the response received (RFC 9111 §4.2.3).
	RequestTime, ResponseTime time.Time
}

// variantIndex is stored at a primary key when the response varies: it
// names the Vary fields, and Epoch separates its variants from those of an
// index that was invalidated (so old variants never come back).
type variantIndex struct {
	Names []string
	Epoch string
}

const (
	kindEntry = 'E'
	kindIndex = 'V'
	magic     = "hc1"
)

var errBadValue = errors.New("not a cache value")

// EncodeEntry serialises e for a store.
func EncodeEntry(e *Entry) []byte {
	n := len(e.Body) + 64
	for k, vs := range e.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 8
		}
	}
	b := make([]byte, 0, n)
	b = append(b, magic...)
	b = append(b, kindEntry)
	b = binary.AppendUvarint(b, uint64(e.Status))
	b = binary.AppendVarint(b, e.RequestTime.UnixNano())
	b = binary.AppendVarint(b, e.ResponseTime.UnixNano())
	count := 0
	for _, vs := range e.Header {
		count += len(vs)
	}
	b = binary.AppendUvarint(b, uint64(count))
	for k, vs := range e.Header {
		for _, v := range vs {
			b = appendString(b, k)
			b = appendString(b, v)
		}
	}
	return append(appendString(b, ""), e.Body...)
}

func encodeIndex(ix variantIndex) []byte {
	b := append([]byte(magic), kindIndex)
	b = appendString(b, ix.Epoch)
	b = binary.AppendUvarint(b, uint64(len(ix.Names)))
	for _, n := range ix.Names {
		b = appendString(b, n)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoded is one value read from a store: an entry or a variant index.
type decoded struct {
	entry *Entry
	index *variantIndex
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errBadValue
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errBadValue
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) str() string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.err = errBadValue
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// decodeValue parses a store value; anything else (garbage left by another
// program, a truncated write) is errBadValue and is treated as a miss.
func decodeValue(b []byte) (decoded, error) {
	if len(b) < len(magic)+1 || string(b[:len(magic)]) != magic {
		return decoded{}, errBadValue
	}
	kind := b[len(magic)]
	r := &reader{b: b[len(magic)+1:]}
	switch kind {
	case kindIndex:
		ix := &variantIndex{Epoch: r.str()}
		n := r.uvarint()
		if n > uint64(len(r.b)) {
			return decoded{}, errBadValue
		}
		for i := uint64(0); i < n && r.err == nil; i++ {
			ix.Names = append(ix.Names, r.str())
		}
		if r.err != nil {
			return decoded{}, r.err
		}
		return decoded{index: ix}, nil
	case kindEntry:
		e := &Entry{Status: int(r.uvarint())}
		e.RequestTime = time.Unix(0, r.varint())
		e.ResponseTime = time.Unix(0, r.varint())
		n := r.uvarint()
		if n > uint64(len(r.b)) || e.Status < 100 || e.Status > 999 {
			return decoded{}, errBadValue
		}
		e.Header = make(http.Header, n)
		for i := uint64(0); i < n && r.err == nil; i++ {
			k := r.str()
			e.Header[k] = append(e.Header[k], r.str())
		}
		if r.str() != "" || r.err != nil {
			return decoded{}, errBadValue
		}
		e.Body = r.b
		return decoded{entry: e}, nil
	}
	return decoded{}, errBadValue
}
