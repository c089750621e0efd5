//go:build race

package rawsock

import (
	"errors"
	"syscall"
	"unsafe"
)

// Under the race detector the system calls go through package syscall:
// its Write releases and its Read acquires one synchronization point, so
// that what a goroutine did before writing to a socket happens before
// what a goroutine does after reading it on the other end. Raw calls
// would hide that order and make the detector report races that are
// not there.

func errno(err error) syscall.Errno {
	var e syscall.Errno
	if err != nil && errors.As(err, &e) {
		return e
	}
	return 0
}

func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Read(int(fd), p)
	return max(n, 0), errno(err)
}

func sysWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Write(int(fd), p)
	return max(n, 0), errno(err)
}

func sysWritev(fd uintptr, iov []syscall.Iovec) (int, syscall.Errno) {
	// A write of nothing, for its release annotation (a no-op on a
	// stream socket, write(2)).
	_, _ = syscall.Write(int(fd), nil)
	n, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	return int(n), e
}
