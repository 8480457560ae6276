package admit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Token kinds: publish and play tokens are signed with different keys, so a viewer's
// token can never publish.
const (
	KindPublish = "publish"
	KindPlay    = "play"
)

// maxTokenLen bounds what Verify parses; a real token is under 100 bytes.
const maxTokenLen = 512

// Token errors.
var (
	ErrTokenMissing   = errors.New("token required")
	ErrTokenMalformed = errors.New("token malformed")
	ErrTokenExpired   = errors.New("token expired")
	ErrTokenScope     = errors.New("token is for another stream")
	ErrTokenBadSig    = errors.New("token signature does not match")
)

// MintToken signs a token of kind for scope ("app/stream", or "app/*" for every stream of
// an app) that expires at exp. Its form is SCOPE.EXPIRY.SIGNATURE, the scope in URL-safe
// base64, the expiry in Unix seconds and the signature an HMAC-SHA256 of kind, scope and
// expiry, so it can go in a URL query as is: ?token=...
func MintToken(key []byte, kind, scope string, exp time.Time) string {
	e := strconv.FormatInt(exp.Unix(), 10)
	return base64.RawURLEncoding.EncodeToString([]byte(scope)) + "." + e + "." + tokenSig(key, kind, scope, e)
}

func tokenSig(key []byte, kind, scope, exp string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("peer-token-v1\x00" + kind + "\x00" + scope + "\x00" + exp))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

// VerifyToken checks that token allows kind on stream ("app/name") at now.
func VerifyToken(key []byte, kind, stream, token string, now time.Time) error {
	if token == "" {
		return ErrTokenMissing
	}
	if len(token) > maxTokenLen {
		return ErrTokenMalformed
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ErrTokenMalformed
	}
	scopeB, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return ErrTokenMalformed
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return ErrTokenMalformed
	}
	scope := string(scopeB)
	if !hmac.Equal([]byte(tokenSig(key, kind, scope, parts[1])), []byte(parts[2])) {
		return ErrTokenBadSig
	}
	if !scopeCovers(scope, stream) {
		return fmt.Errorf("%w (%s)", ErrTokenScope, scope)
	}
	if now.Unix() >= exp {
		return ErrTokenExpired
	}
	return nil
}

// scopeCovers reports whether a token scope names stream: exactly, or as "app/*".
func scopeCovers(scope, stream string) bool {
	if app, ok := strings.CutSuffix(scope, "/*"); ok {
		a, _, _ := strings.Cut(stream, "/")
		return a == app
	}
	return scope == stream
}
