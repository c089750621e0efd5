package activation

// PassedNames returns the names of the sockets passed to this process
// (one per fd, in fd order), without taking them and without unsetting the
// variables: the caller needs the names to load its config (a listener
// with no address is valid only when a socket of its name was passed)
// before it knows what to Listen for. Nil means nothing was passed.
func PassedNames(e Env) ([]string, error) {
	le := listenEnv{
		pid:   e.getenv(envListenPID),
		ppid:  e.getenv(envListenPPID),
		fds:   e.getenv(envListenFDs),
		names: e.getenv(envListenFDNames),
	}
	return parseListenEnv(le, e.pid(), e.ppid())
}

// IsInternalEnv reports whether key is a variable this package uses
// between a parent and the child it starts on upgrade, so that callers
// that treat unknown variables as errors can skip it.
func IsInternalEnv(key string) bool { return key == envListenPPID }
