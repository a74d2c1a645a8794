package bundle

import (
	"os"
	"syscall"
)

// syncFileRangeWrite is SYNC_FILE_RANGE_WRITE: start writing back dirty
// pages of the range, without waiting for them.
const syncFileRangeWrite = 0x2

// startWriteback asks the kernel to start writing [off, off+n) of f to disk
// now. The bundle is synced at commit anyway; starting early lets the disk
// work while the next frames compress, instead of all at once in the fsync.
// It is only a hint: errors are ignored, and the fsync reports real ones.
func startWriteback(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		syscall.SyncFileRange(int(fd), off, n, syncFileRangeWrite)
	})
}
