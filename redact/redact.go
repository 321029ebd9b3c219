// Package redact removes secrets from URLs and from text that may hold URLs,
// such as error messages and log lines. It is the one place groupsync does
// this: every role's log output and every error it prints pass through it,
// and code that puts a URL into a message uses URL.
//
// A URL's user information goes ("nats://user:pw@host" becomes
// "nats://user:REDACTED@host"; "nats://token@host" becomes
// "nats://REDACTED@host"), and so do the values of query parameters whose
// names suggest a secret ("?password=…", "?access_token=…", "?sig=…").
// Malformed URLs are handled too: the error of url.Parse quotes the URL it
// could not parse, password included, so redaction never depends on parsing.
//
// It imports the standard library only, so every package may use it.
package redact

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// Mask replaces every secret removed.
const Mask = "REDACTED"

// urlPattern finds URLs in text: a scheme, "://", then everything up to
// white space or a quote.
var urlPattern = regexp.MustCompile(`(?i)[a-z][a-z0-9+.\-]*://[^\s"'<>` + "`" + `]*`)

// listSplit finds the start of the next URL of a comma-separated list, such
// as a NATS server list.
var listSplit = regexp.MustCompile(`(?i),[a-z][a-z0-9+.\-]*://`)

// secretParams are parts of query parameter names whose values are hidden.
var secretParams = []string{"pass", "pwd", "secret", "token", "key", "auth", "sig", "cred", "jwt", "session"}

// URL returns raw with its user information and secret query values
// replaced by Mask. raw may be a comma-separated list of URLs (as in
// GROUPSYNC_NATS_URL); each is redacted. Text without "://" is returned as
// is.
func URL(raw string) string {
	if !strings.Contains(raw, "://") {
		return raw
	}
	cuts := listSplit.FindAllStringIndex(raw, -1)
	if len(cuts) == 0 {
		return one(raw)
	}
	var b strings.Builder
	start := 0
	for _, c := range cuts {
		b.WriteString(one(raw[start:c[0]]))
		b.WriteByte(',')
		start = c[0] + 1
	}
	b.WriteString(one(raw[start:]))
	return b.String()
}

// one redacts a single URL without parsing it.
func one(u string) string {
	i := strings.Index(u, "://")
	if i < 0 {
		return u
	}
	scheme, rest := u[:i+3], u[i+3:]
	// The query (and fragment) start at the first '?' or '#'.
	end := strings.IndexAny(rest, "?#")
	if end < 0 {
		end = len(rest)
	}
	head, tail := rest[:end], rest[end:]
	head = userinfo(head)
	if strings.HasPrefix(tail, "?") {
		q, frag := tail[1:], ""
		if j := strings.IndexByte(q, '#'); j >= 0 {
			q, frag = q[:j], q[j:]
		}
		tail = "?" + query(q) + frag
	}
	return scheme + head + tail
}

// userinfo redacts the user information of "authority/path". The
// authority normally ends at the first '/', but a password may hold an
// unescaped '/' or '@', so an '@' after a ':' further on counts too.
func userinfo(head string) string {
	authority := head
	if j := strings.IndexByte(head, '/'); j >= 0 {
		authority = head[:j]
	}
	at := strings.LastIndexByte(authority, '@')
	if at < 0 {
		at = strings.LastIndexByte(head, '@')
		if at < 0 || !strings.Contains(head[:at], ":") {
			return head
		}
	}
	user := head[:at]
	if c := strings.IndexByte(user, ':'); c >= 0 && !strings.Contains(user[:c], "/") {
		return user[:c] + ":" + Mask + head[at:]
	}
	return Mask + head[at:]
}

// query redacts the values of secret-looking parameters of a raw query.
func query(q string) string {
	if q == "" {
		return q
	}
	parts := strings.FieldsFunc(q, func(r rune) bool { return r == '&' || r == ';' })
	seps := make([]byte, 0, len(parts))
	for i := 0; i < len(q); i++ {
		if q[i] == '&' || q[i] == ';' {
			seps = append(seps, q[i])
		}
	}
	var b strings.Builder
	for i, p := range parts {
		if i > 0 && i-1 < len(seps) {
			b.WriteByte(seps[i-1])
		}
		name, _, hasValue := strings.Cut(p, "=")
		if hasValue && secretName(name) {
			b.WriteString(name + "=" + Mask)
			continue
		}
		b.WriteString(p)
	}
	return b.String()
}

func secretName(name string) bool {
	name = strings.ToLower(name)
	for _, s := range secretParams {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// Text returns s with every URL in it redacted as URL does. It is meant for
// error messages and log lines.
func Text(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return urlPattern.ReplaceAllStringFunc(s, URL)
}

// Error returns err with a message redacted by Text. The returned error
// wraps err, so errors.Is and errors.As see through it. It returns nil for
// nil, and err itself when there is nothing to redact.
func Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	red := Text(msg)
	if red == msg {
		return err
	}
	return &redactedError{msg: red, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// Writer returns a writer that redacts, with Text, every chunk written
// before passing it to w. Each Write must carry whole lines (zerolog writes
// one event per Write), so a URL is never split between two writes. It
// reports len(p) written when w accepted the redacted bytes.
func Writer(w io.Writer) io.Writer {
	return &writer{w: w}
}

type writer struct{ w io.Writer }

func (w *writer) Write(p []byte) (int, error) {
	if !bytes.Contains(p, []byte("://")) {
		return w.w.Write(p)
	}
	red := Text(string(p))
	if _, err := io.WriteString(w.w, red); err != nil {
		return 0, err
	}
	return len(p), nil
}

// ErrNotJSON is returned by JSON for input that is not one JSON value.
var ErrNotJSON = errors.New("redact: not a JSON value")

// JSON returns the JSON value b re-encoded with the values of secret-looking
// object keys (names holding "pass", "secret", "token", "key", "sig", "auth",
// "cred", "jwt", "session", ...) replaced by Mask, whatever their type, and
// every other string redacted as Text does. Object keys come out sorted.
// It returns ErrNotJSON, and nothing of b, for input that is not one JSON
// value, so a caller never shows what it could not redact.
func JSON(b []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, ErrNotJSON
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, ErrNotJSON
	}
	out, err := json.Marshal(jsonValue(v))
	if err != nil {
		return nil, fmt.Errorf("redact: encode: %w", err)
	}
	return out, nil
}

func jsonValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if secretName(k) {
				v[k] = Mask
				continue
			}
			v[k] = jsonValue(e)
		}
		return v
	case []any:
		for i, e := range v {
			v[i] = jsonValue(e)
		}
		return v
	case string:
		return Text(v)
	}
	return v
}
