package config

import (
	"errors"
	"fmt"
)

// ObjectError says why one configuration object is invalid.
type ObjectError struct {
	Kind  string // e.g. "IPPool"
	Name  string
	Field string // e.g. "spec.addresses[1]"
	Err   error
}

func (e *ObjectError) Error() string {
	return fmt.Sprintf("%s %q: %s: %v", e.Kind, e.Name, e.Field, e.Err)
}

func (e *ObjectError) Unwrap() error { return e.Err }

// Sentinel errors that callers may act on; each ObjectError wraps one of
// these or a parse error.
var (
	ErrOverlap      = errors.New("overlapping addresses")
	ErrUnknownRef   = errors.New("reference to an object that does not exist")
	ErrInvalidValue = errors.New("invalid value")
)

// Problems lists the invalid objects of a snapshot.
type Problems []*ObjectError

// For returns the problems of one object.
func (ps Problems) For(kind, name string) []*ObjectError {
	var out []*ObjectError
	for _, p := range ps {
		if p.Kind == kind && p.Name == name {
			out = append(out, p)
		}
	}
	return out
}

// Err joins the problems into one error, or returns nil when there are none.
func (ps Problems) Err() error {
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errors.Join(errs...)
}
