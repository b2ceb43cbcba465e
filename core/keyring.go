package core

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Keyring seals API keys at rest. The XEP-0114 handshake needs the key
// itself (SHA-1 of stream id and secret), so a hash alone is not enough;
// the sealed copy in the database is useless without the node key, which
// lives in a file beside it (mode 0600), never in the database.
type Keyring struct {
	aead cipher.AEAD
}

// NewKeyring uses a 32-byte key.
func NewKeyring(key []byte) (*Keyring, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Keyring{aead: aead}, nil
}

// LoadKeyring reads the node key at path, creating it when missing.
func LoadKeyring(path string) (*Keyring, error) {
	key, err := loadOrCreateSecret(path, 32)
	if err != nil {
		return nil, err
	}
	return NewKeyring(key)
}

// Seal encrypts s with a fresh nonce.
func (k *Keyring) Seal(s string) []byte {
	nonce := randomBytes(k.aead.NonceSize())
	return k.aead.Seal(nonce, nonce, []byte(s), nil)
}

// Open decrypts what Seal made.
func (k *Keyring) Open(sealed []byte) (string, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n {
		return "", errors.New("sealed key too short")
	}
	b, err := k.aead.Open(nil, sealed[:n], sealed[n:], nil)
	if err != nil {
		return "", fmt.Errorf("open sealed key (wrong node key?): %w", err)
	}
	return string(b), nil
}

// LoadOrCreateSecret reads n random bytes kept in a file, writing fresh ones
// (mode 0600) when the file does not exist. The dev secret and the node key
// are kept this way in the data folder.
func LoadOrCreateSecret(path string, n int) ([]byte, error) { return loadOrCreateSecret(path, n) }

func loadOrCreateSecret(path string, n int) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) != n {
			return nil, fmt.Errorf("%s: want %d bytes, found %d", path, n, len(b))
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	b = randomBytes(n)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return loadOrCreateSecret(path, n) // another process won the race
	}
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, err
	}
	return b, f.Close()
}
