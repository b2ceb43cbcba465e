package core

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// lowerBase32 spells PUIDs: URL-safe, and safe as an XMPP localpart, which
// servers compare case-insensitively (so no upper case at all).
var lowerBase32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("core: crypto/rand failed: " + err.Error())
	}
	return b
}

// NewPUID returns a fresh PUID: 160 random bits, 32 characters of [a-z2-7].
func NewPUID() string { return lowerBase32.EncodeToString(randomBytes(20)) }

// NewSessionID returns a random (version 4) UUID.
func NewSessionID() string {
	b := randomBytes(16)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// NewNotificationID returns a random id for a live notification.
func NewNotificationID() string { return hex.EncodeToString(randomBytes(16)) }

// SecretLength is the length of API keys and domain verification keys
// (PROTOCOL §5).
const SecretLength = 1024

// NewSecret returns SecretLength URL-safe random characters (6144 bits).
func NewSecret() string {
	return base64.RawURLEncoding.EncodeToString(randomBytes(SecretLength * 3 / 4))[:SecretLength]
}
