package auth

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// Tokens is a parsed bearer-token file: the SHA-256 of each token and the
// name it authenticates as. Tokens are hashed at rest, so the file does
// not hand out credentials to whoever can read it. It is immutable and
// safe for concurrent use.
type Tokens struct {
	byHash map[[sha256.Size]byte]string
}

// LoadTokens reads and parses the token file at path.
func LoadTokens(path string) (*Tokens, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read tokens: %w", err)
	}
	t, err := ParseTokens(b)
	if err != nil {
		return nil, fmt.Errorf("tokens %s: %w", path, err)
	}
	return t, nil
}

// HashToken returns the line form of a token's hash, "sha256:<hex>", as
// it is written in a token file (for example from
// `printf %s "$TOKEN" | sha256sum`).
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ParseTokens parses a token file: one token per line as "name
// sha256:<64 hex digits>" or just "sha256:<hex>" (the name is then
// "token<N>" with N the line number). Blank lines and '#' comments are
// skipped.
func ParseTokens(b []byte) (*Tokens, error) {
	t := &Tokens{byHash: make(map[[sha256.Size]byte]string)}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		name, h := fmt.Sprintf("token%d", n), fields[0]
		switch len(fields) {
		case 1:
		case 2:
			name, h = fields[0], fields[1]
		default:
			return nil, fmt.Errorf("line %d: %w: want [name] sha256:<hex>", n, ErrMalformed)
		}
		hexSum, ok := strings.CutPrefix(h, "sha256:")
		raw, err := hex.DecodeString(hexSum)
		if !ok || err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("line %d: %w: the token must be stored as sha256:<64 hex digits>, never in clear", n, ErrMalformed)
		}
		t.byHash[[sha256.Size]byte(raw)] = name
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read tokens: %w", err)
	}
	return t, nil
}

// Len is the number of tokens.
func (t *Tokens) Len() int { return len(t.byHash) }

// Verify returns the name of token, and whether it is known. The lookup
// is by the token's SHA-256, so its timing says nothing an attacker can
// steer: they would have to choose tokens by their hashes' prefixes.
func (t *Tokens) Verify(token string) (string, bool) {
	name, ok := t.byHash[sha256.Sum256([]byte(token))]
	return name, ok
}
