package emulator

import (
	"errors"
	"os"
)

// FailJournalWrites makes every journal write of e fail after writing part
// of its line (fail true), as a full disk would, or work again (fail false).
func FailJournalWrites(e *Emulator, fail bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !fail {
		e.store.write = nil
		return
	}
	e.store.write = func(f *os.File, b []byte) (int, error) {
		n, _ := f.Write(b[:len(b)/2])
		return n, errors.New("no space left on device (injected)")
	}
}
