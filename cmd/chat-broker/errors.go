package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strings"
	"syscall"
)

// Exit codes, the same for every command (docs/cli.md tells users):
//
//	0  done, or the answer is yes: allowed, valid, ready
//	1  the answer is no (refused, invalid input the command was asked to
//	   judge, not ready), or a failure while running
//	2  the command could not do what was asked with what it was given:
//	   a usage error (unknown flag, bad value, missing argument), or an
//	   input file it did not judge that is unreadable or invalid
//
// So a CI step that expects "policy explain" to refuse a call (exit 1)
// fails when the policy file is missing or broken (exit 2).
const (
	exitOK    = 0
	exitNo    = 1
	exitUsage = 2
)

// exitError carries the exit code of an error; main picks it with
// exitCode. Any other error exits 1.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError is an error that exits 2.
func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// noError is an error that exits 1: the command's answer is no.
func noError(format string, args ...any) error {
	return &exitError{code: exitNo, err: fmt.Errorf(format, args...)}
}

// exitCode is the process's exit code for the error run returned.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitNo
}

// fileError says why the file named by a flag (or an argument: flag "")
// cannot be read, in words, then what to do; it exits 2. fix is the
// advice for a missing file.
func fileError(flag, path string, err error, fix string) error {
	what := "cannot be read"
	advice := fix
	switch {
	case errors.Is(err, fs.ErrNotExist):
		what = "no such file"
	case errors.Is(err, fs.ErrPermission):
		what = "permission denied"
		advice = "make it readable by the user chat-broker runs as"
	case errors.Is(err, syscall.EISDIR):
		what = "is a directory"
		advice = "name the file, not its folder"
	default:
		var pe *fs.PathError
		if errors.As(err, &pe) {
			what = pe.Err.Error()
		}
	}
	name := path
	if flag != "" {
		name = flag + " " + path
	}
	return usageError("%s: %s: %s", name, what, advice)
}

// listenError says why a listener could not be opened, in words, then
// what to do. It exits 1: the command line was fine, the machine said no.
func listenError(flag, addr string, err error) error {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("%s %s: the address is in use: stop what listens there or choose another port", flag, addr)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%s %s: permission denied: ports below 1024 need privileges; choose a port of 1024 or more", flag, addr)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("%s %s: no such address on this machine: use 127.0.0.1 or one of its own addresses", flag, addr)
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return fmt.Errorf("%s %s: %v", flag, addr, oe.Err)
	}
	return fmt.Errorf("%s %s: %v", flag, addr, err)
}

// withoutPrefix drops the Go package prefixes ("broker: key: ",
// "proxy: explain: ") of a library error: what a person reads names the
// flag or file instead.
func withoutPrefix(err error, prefixes ...string) string {
	s := err.Error()
	for _, p := range prefixes {
		s = strings.TrimPrefix(s, p)
	}
	return s
}
