package traffic

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
)

func TestErrorKind(t *testing.T) {
	for err, want := range map[error]string{
		nil: "",
		fmt.Errorf("dial: %w", syscall.ECONNREFUSED):  "refused",
		fmt.Errorf("read: %w", syscall.ECONNRESET):    "reset",
		fmt.Errorf("get: %w", os.ErrDeadlineExceeded): "timeout",
		fmt.Errorf("dial: %w", syscall.EHOSTUNREACH):  "unreachable",
		errors.New("something else"):                  "other",
	} {
		if got := ErrorKind(err); got != want {
			t.Errorf("ErrorKind(%v) = %q, want %q", err, got, want)
		}
	}
}
