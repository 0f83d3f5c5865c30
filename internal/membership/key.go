package membership

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"unicode"
)

// validKeyLen reports whether n is a length memberlist accepts for an AES
// key (AES-128, AES-192, AES-256).
func validKeyLen(n int) bool {
	return n == 16 || n == 24 || n == 32
}

// ParseKey turns the contents of a key file or Secret into a memberlist
// key. Text that is standard base64 (surrounding whitespace, such as a
// trailing newline, is ignored) of 16, 24 or 32 bytes is decoded; otherwise
// exactly 16, 24 or 32 raw bytes are taken as they are. Base64 is tried
// first because keys are usually made with `openssl rand -base64 32`, and a
// random raw key is almost never valid base64. Every speaker parses the same
// way, so an ambiguous key still yields the same key everywhere.
func ParseKey(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("memberlist key: empty; must be 16, 24 or 32 bytes, raw or base64")
	}
	text := bytes.TrimSpace(b)
	decoded := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	n, decodeErr := base64.StdEncoding.Decode(decoded, text)
	if decodeErr == nil && validKeyLen(n) {
		return decoded[:n], nil
	}
	if validKeyLen(len(b)) {
		return bytes.Clone(b), nil
	}
	if len(text) == 0 {
		return nil, fmt.Errorf("memberlist key: only whitespace; must be 16, 24 or 32 bytes, raw or base64")
	}
	if decodeErr == nil {
		return nil, fmt.Errorf("memberlist key: %d bytes after base64 decoding; must be 16, 24 or 32", n)
	}
	return nil, fmt.Errorf("memberlist key: %d bytes that are not base64 (%v); must be base64 of, or raw, 16, 24 or 32 bytes", len(b), decodeErr)
}

// ParseKeys turns a list of base64 keys, separated by whitespace or
// commas, into memberlist keys (the secondary keys of a rotation). Each
// must be standard base64 of 16, 24 or 32 bytes; raw keys cannot be told
// apart in a list. Empty text is no keys.
func ParseKeys(b []byte) ([][]byte, error) {
	fields := strings.FieldsFunc(string(b), func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	out := make([][]byte, 0, len(fields))
	for i, f := range fields {
		k, err := base64.StdEncoding.DecodeString(f)
		if err != nil {
			return nil, fmt.Errorf("memberlist key %d of the list: not base64 (%v); each must be base64 of 16, 24 or 32 bytes", i+1, err)
		}
		if !validKeyLen(len(k)) {
			return nil, fmt.Errorf("memberlist key %d of the list: %d bytes after base64 decoding; must be 16, 24 or 32", i+1, len(k))
		}
		out = append(out, k)
	}
	return out, nil
}
