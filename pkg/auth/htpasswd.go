// Package auth owns credentials: the htpasswd files Basic authentication
// checks passwords against (bcrypt, {SHA} and apr1, the forms Apache's
// htpasswd writes), the token files Bearer authentication checks tokens
// against (hashed at rest), the parsing of Authorization credentials, and
// the lockout of clients and users after failed attempts (Lockout, in
// memory or shared through Redis).
//
// It decides on strings (a header value, a user, a key), never on a
// request: the HTTP adapter that answers 401/407/429 lives with the
// policies that use it (package policy). It must not know routes or
// listeners.
package auth

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// ErrUnsupportedHash is wrapped by the errors of ParseHtpasswd for a
// password hash in a form this package does not verify.
var ErrUnsupportedHash = errors.New("unsupported password hash")

// ErrMalformed is wrapped by the errors of the file parsers for a line
// that does not follow the file's grammar.
var ErrMalformed = errors.New("malformed line")

// hashKind is the form of one stored password.
type hashKind uint8

const (
	hashBcrypt hashKind = iota + 1
	hashSHA
	hashAPR1
)

type entry struct {
	kind hashKind
	hash string
}

// Htpasswd is a parsed htpasswd file: users and their password hashes.
// It is immutable and safe for concurrent use.
type Htpasswd struct {
	users map[string]entry
	// dummy is a bcrypt hash checked for unknown users, so that the time
	// an answer takes does not tell which user names exist.
	dummy []byte
}

// LoadHtpasswd reads and parses the htpasswd file at path.
func LoadHtpasswd(path string) (*Htpasswd, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read htpasswd: %w", err)
	}
	h, err := ParseHtpasswd(b)
	if err != nil {
		return nil, fmt.Errorf("htpasswd %s: %w", path, err)
	}
	return h, nil
}

// ParseHtpasswd parses htpasswd lines "user:hash" (htpasswd(1)). Blank
// lines and lines starting with '#' are skipped. Hashes may be bcrypt
// ($2y$, $2a$, $2b$: htpasswd -B), {SHA} (htpasswd -s) or apr1 MD5
// ($apr1$: htpasswd -m, its default before 2.4.?); crypt(3) DES
// (htpasswd -d), SHA-crypt ($5$, $6$) and plain text are refused with an
// error naming the form and the line, rather than silently never
// matching.
func ParseHtpasswd(b []byte) (*Htpasswd, error) {
	h := &Htpasswd{users: make(map[string]entry)}
	cost := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" || hash == "" {
			return nil, fmt.Errorf("line %d: %w: want user:hash", n, ErrMalformed)
		}
		e, err := parseHash(hash)
		if err != nil {
			return nil, fmt.Errorf("line %d (user %q): %w", n, user, err)
		}
		if e.kind == hashBcrypt {
			if c, err := bcrypt.Cost([]byte(hash)); err == nil && c > cost {
				cost = c
			}
		}
		h.users[user] = e
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read htpasswd: %w", err)
	}
	if cost == 0 {
		cost = bcrypt.MinCost
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("handoff-no-such-user"), cost)
	if err != nil {
		return nil, fmt.Errorf("make the unknown-user hash: %w", err)
	}
	h.dummy = dummy
	return h, nil
}

func parseHash(s string) (entry, error) {
	switch {
	case strings.HasPrefix(s, "$2y$"), strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"):
		if _, err := bcrypt.Cost([]byte(s)); err != nil {
			return entry{}, fmt.Errorf("%w: bcrypt hash: %w", ErrMalformed, err)
		}
		return entry{kind: hashBcrypt, hash: s}, nil
	case strings.HasPrefix(s, "{SHA}"):
		raw, err := base64.StdEncoding.DecodeString(s[len("{SHA}"):])
		if err != nil || len(raw) != sha1.Size {
			return entry{}, fmt.Errorf("%w: {SHA} hash is not base64 of 20 bytes", ErrMalformed)
		}
		return entry{kind: hashSHA, hash: string(raw)}, nil
	case strings.HasPrefix(s, "$apr1$"):
		salt, sum, ok := strings.Cut(s[len("$apr1$"):], "$")
		if !ok || len(salt) == 0 || len(salt) > 8 || len(sum) != 22 {
			return entry{}, fmt.Errorf("%w: apr1 hash is not $apr1$salt$22 characters", ErrMalformed)
		}
		return entry{kind: hashAPR1, hash: s}, nil
	case strings.HasPrefix(s, "$5$"), strings.HasPrefix(s, "$6$"):
		return entry{}, fmt.Errorf("%w: SHA-crypt (%s): use bcrypt (htpasswd -B)", ErrUnsupportedHash, s[:3])
	case strings.HasPrefix(s, "$"):
		return entry{}, fmt.Errorf("%w: unknown scheme: use bcrypt (htpasswd -B)", ErrUnsupportedHash)
	default:
		return entry{}, fmt.Errorf("%w: crypt(3) DES or plain text (htpasswd -d or -p): use bcrypt (htpasswd -B)", ErrUnsupportedHash)
	}
}

// Len is the number of users.
func (h *Htpasswd) Len() int { return len(h.users) }

// Verify reports whether password is user's. Comparisons are constant
// time, and an unknown user costs a bcrypt check like a known one.
func (h *Htpasswd) Verify(user, password string) bool {
	e, ok := h.users[user]
	if !ok {
		_ = bcrypt.CompareHashAndPassword(h.dummy, []byte(password))
		return false
	}
	switch e.kind {
	case hashBcrypt:
		return bcrypt.CompareHashAndPassword([]byte(e.hash), []byte(password)) == nil
	case hashSHA:
		sum := sha1.Sum([]byte(password))
		return subtle.ConstantTimeCompare(sum[:], []byte(e.hash)) == 1
	case hashAPR1:
		salt, _, _ := strings.Cut(e.hash[len("$apr1$"):], "$")
		return subtle.ConstantTimeCompare([]byte(APR1(password, salt)), []byte(e.hash)) == 1
	}
	return false
}
