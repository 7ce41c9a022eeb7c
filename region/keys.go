package region

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
)

// SHA1Mangler replaces a key by the hex SHA-1 of it (dogpile's sha1_mangle_key).
func SHA1Mangler(key string) string {
	sum := sha1.Sum([]byte(key))
	return hex.EncodeToString(sum[:])
}

// SHA256Mangler replaces a key by the hex SHA-256 of it.
func SHA256Mangler(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// LengthConditionalMangler returns a mangler that applies m only to keys
// longer than n bytes, leaving short keys readable (dogpile's
// length_conditional_mangler). Mangled keys are prefixed with "#" so they
// cannot collide with short keys that happen to look like a hash.
func LengthConditionalMangler(n int, m func(string) string) func(string) string {
	return func(key string) string {
		if len(key) <= n && (len(key) == 0 || key[0] != '#') {
			return key
		}
		return "#" + m(key)
	}
}
