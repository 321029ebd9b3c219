package groupsync

import "errors"

// PermanentError marks a failure that no retry can fix: bad input, a group
// past E3Kit's participant limit, a group id Virgil refuses. A worker
// dead-letters the job at once instead of retrying it. Create one with
// Permanent and detect one with IsPermanent.
type PermanentError struct {
	// Err is the underlying failure.
	Err error
}

// Error implements error; it is the message of the underlying error.
func (e *PermanentError) Error() string {
	if e.Err == nil {
		return "groupsync: permanent failure"
	}
	return e.Err.Error()
}

// Unwrap returns the underlying error, so errors.Is and errors.As see it.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a permanent failure. It returns nil for a nil err
// and err itself when err is already permanent.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	if IsPermanent(err) {
		return err
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err, or any error it wraps, was marked with
// Permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}
