package queue

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/groupsync/groupsync/redact"
)

// HeaderSignature carries a job's signature: "hmac-sha256=" and the hex
// HMAC-SHA256, under Config.JobKey, of the message body exactly as stored.
const HeaderSignature = "Groupsync-Signature"

// signaturePrefix names the scheme in HeaderSignature.
const signaturePrefix = "hmac-sha256="

// ReasonUnauthenticated is the dead-letter reason of a message that Next
// will not hand out: without a signature, with a signature no accepted key
// made, or carrying the app id of another CometChat app.
const ReasonUnauthenticated = "unauthenticated job"

// MinJobKeyLen is the shortest job key accepted, in bytes.
const MinJobKeyLen = 32

// ErrNoJobKey reports a Queue asked to publish or take jobs without
// Config.JobKey (or, for Next, without Config.AppID): it never sends an
// unsigned job and never hands out one it could not verify.
var ErrNoJobKey = errors.New("queue: no job key: jobs can be neither signed nor verified")

// JobKey is a secret that signs and verifies jobs (HMAC-SHA256). Its bytes
// are the key; it prints and marshals as REDACTED.
type JobKey []byte

// GenerateJobKey returns a new random key: 32 random bytes, hex encoded (64
// characters, so it can be written into an environment variable as is).
func GenerateJobKey() (JobKey, error) {
	return generateJobKey(rand.Reader)
}

func generateJobKey(r io.Reader) (JobKey, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("queue: generate job key: %w", err)
	}
	return JobKey(hex.EncodeToString(b)), nil
}

// String returns REDACTED.
func (JobKey) String() string { return redact.Mask }

// GoString returns REDACTED.
func (JobKey) GoString() string { return redact.Mask }

// Format prints REDACTED for every verb.
func (JobKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redact.Mask) }

// MarshalJSON returns the JSON string "REDACTED".
func (JobKey) MarshalJSON() ([]byte, error) { return []byte(`"` + redact.Mask + `"`), nil }

// MarshalText returns REDACTED.
func (JobKey) MarshalText() ([]byte, error) { return []byte(redact.Mask), nil }

// Sign returns the HeaderSignature value of body under k. Publish signs
// with it; it is exported for tools and tests that queue jobs by hand.
func (k JobKey) Sign(body []byte) string {
	m := hmac.New(sha256.New, k)
	m.Write(body)
	return signaturePrefix + hex.EncodeToString(m.Sum(nil))
}

// verifies reports whether sig is body's signature under k, in constant
// time.
func (k JobKey) verifies(body []byte, sig string) bool {
	if len(k) == 0 {
		return false
	}
	rest, ok := strings.CutPrefix(sig, signaturePrefix)
	if !ok {
		return false
	}
	got, err := hex.DecodeString(rest)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, k)
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

// authentic reports whether sig is body's signature under the current or
// the previous job key.
func (q *Queue) authentic(body []byte, sig string) bool {
	cur := q.cfg.JobKey.verifies(body, sig)
	prev := q.cfg.PreviousJobKey.verifies(body, sig)
	return cur || prev
}

// CheckJobAuth reports whether Next can authenticate jobs: it returns an
// error matching ErrNoJobKey when Config.JobKey or Config.AppID is empty,
// nil otherwise. Workers call it before they start, so a worker that could
// not tell a forged job from a real one refuses to run.
func (q *Queue) CheckJobAuth() error {
	switch {
	case len(q.cfg.JobKey) == 0:
		return fmt.Errorf("%w (Config.JobKey is empty)", ErrNoJobKey)
	case q.cfg.AppID == "":
		return fmt.Errorf("%w: no CometChat app id to check jobs against (Config.AppID is empty)", ErrNoJobKey)
	}
	return nil
}

// validateKeys returns what is wrong with the job keys of a defaulted
// Config.
func (c Config) validateKeys() []error {
	var errs []error
	if len(c.JobKey) > 0 && len(c.JobKey) < MinJobKeyLen {
		errs = append(errs, fmt.Errorf("JobKey has %d bytes, want at least %d", len(c.JobKey), MinJobKeyLen))
	}
	if len(c.PreviousJobKey) > 0 {
		if len(c.JobKey) == 0 {
			errs = append(errs, errors.New("PreviousJobKey without JobKey"))
		}
		if len(c.PreviousJobKey) < MinJobKeyLen {
			errs = append(errs, fmt.Errorf("PreviousJobKey has %d bytes, want at least %d", len(c.PreviousJobKey), MinJobKeyLen))
		}
	}
	return errs
}
