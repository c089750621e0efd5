package server

import (
	"context"
	"errors"
)

// ErrUpgradeUnsupported is returned by Upgrade when no Upgrade func was
// configured.
var ErrUpgradeUnsupported = errors.New("upgrade not supported")

// ErrUpgradeInProgress is returned by Upgrade while another runs.
var ErrUpgradeInProgress = errors.New("an upgrade is already in progress")

// Upgrade starts the replacement process and, once it serves, makes Run
// drain and return. On failure this server keeps serving and says why in
// STATUS=. It returns the new process's pid.
func (s *Server) Upgrade(ctx context.Context) (int, error) {
	pid, err := s.upgrade(ctx)
	if err != nil {
		s.notifyStatus("upgrade failed, old process serving: " + err.Error())
	}
	return pid, err
}

func (s *Server) upgrade(ctx context.Context) (int, error) {
	if s.opts.Upgrade == nil {
		return 0, ErrUpgradeUnsupported
	}
	if !s.upgrading.TryLock() {
		return 0, ErrUpgradeInProgress
	}
	defer s.upgrading.Unlock()
	if s.shuttingDwn.Load() {
		return 0, errors.New("shutting down")
	}
	s.log.Info("upgrade: starting new process")
	pid, err := s.opts.Upgrade(ctx)
	if err != nil {
		s.log.Error("upgrade failed, old process keeps serving", "error", err)
		return 0, err
	}
	s.upgradesDone.Add(1)
	select {
	case s.handedOver <- pid:
	default:
	}
	return pid, nil
}

// ReloadOrUpgrade answers a reload request of the service manager, which
// arrives as SIGHUP with Type=notify-reload (systemd.service(5), 253+): it
// upgrades when the binary on disk replaced the running one
// (Options.BinaryReplaced), as `handoff reload` does for ExecReload=, and
// reloads the config otherwise. An upgrade is framed like a reload:
// RELOADING=1 first; on success the new process's READY=1 (sent with
// MAINPID=) ends the reload; on failure this process keeps serving and
// sends READY=1 with the reason, since sd_notify(3) requires READY=1 after
// RELOADING=1 or the unit hangs in "reloading". It returns the new
// process's pid, or 0 after a config reload.
func (s *Server) ReloadOrUpgrade(ctx context.Context) (int, error) {
	replaced := false
	if s.opts.Upgrade != nil && s.opts.BinaryReplaced != nil {
		var err error
		if replaced, err = s.opts.BinaryReplaced(); err != nil {
			s.log.Warn("cannot tell whether the binary was replaced; reloading the config", "error", err)
		}
	}
	if !replaced {
		// A rejected config is logged and reported by reload itself.
		_, err := s.Reload(ctx)
		return 0, err
	}
	s.log.Info("binary replaced on disk: upgrading instead of reloading")
	s.notify(func(n Notifier) error { return n.Reloading() })
	pid, err := s.upgrade(ctx)
	if err != nil {
		s.notifyStatus("upgrade failed, old process serving: "+err.Error(), "READY=1")
	}
	return pid, err
}
