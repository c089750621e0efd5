package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/handoff-proxy/handoff/pkg/activation"
	"github.com/handoff-proxy/handoff/pkg/config"
)

const usageText = `handoff: a reverse proxy and load balancer native to systemd.

Usage:
  handoff [serve] [flags]        run the proxy (the default)
  handoff check [-c PATH] [flags]
                                 validate the config exactly as serve would load it
  handoff config [-c PATH] [--sources] [flags]
                                 print the effective merged config as YAML
  handoff reload [--admin ADDR] [-c PATH] [--timeout D] [PID]
                                 reload a running handoff (ExecReload=); upgrades
                                 instead when PID's binary was replaced on disk
  handoff upgrade [--admin ADDR] [-c PATH] [--timeout D] [PID]
                                 replace a running handoff with the binary on disk
                                 without closing a socket (or send it SIGUSR2)
  handoff status [--admin ADDR] [-c PATH]
                                 show upstreams, target health, cache and state;
                                 exit 1 when an upstream has no healthy target
  handoff version                print the version

Each command has its own --help.

Quick mode, no config file needed:
  handoff -l 127.0.0.1:8080 -b 127.0.0.1:9001 -b 127.0.0.1:9002 -s round_robin

Flags:
`

const checkUsage = `Usage: handoff check [-c PATH] [flags]

Validate the config exactly as "handoff serve" with the same flags and
environment would load it: the file, its conf.d drop-ins, the HANDOFF_*
variables and the flags. Every problem is printed at once, with its file,
line and key. The one difference: a listener without an address is assumed
to be passed by systemd (a socket unit), since check runs outside it.
Exit status: 0 valid, 1 problems, 2 bad command line.

Flags (the same as serve's):
`

const configUsage = `Usage: handoff config [-c PATH] [--sources] [flags]

Print the effective config, merged from every layer and with defaults
filled in, as YAML (secrets redacted). It loads as "handoff check" does.

Flags:
`

const reloadUsage = `Usage: handoff reload [--admin ADDR] [-c PATH] [--timeout D] [PID]

Reload a running handoff through its admin API and report the outcome
(what ExecReload= runs); with the admin API off or unreachable, send
SIGHUP to PID. When PID's binary was replaced on disk, upgrade instead.

Flags:
`

const upgradeUsage = `Usage: handoff upgrade [--admin ADDR] [-c PATH] [--timeout D] [PID]

Replace a running handoff with the binary on disk without closing a socket,
through its admin API; with the admin API off or unreachable, send SIGUSR2
to PID.

Flags:
`

// globalFlags are the flags of one command. serve, check and config have
// all of them (they feed the config layers); reload and upgrade only -c
// and --admin, to find the running process's admin API.
type globalFlags struct {
	fs *pflag.FlagSet
	// usage is printed before the flags by --help.
	usage     string
	config    string
	listen    []string
	backends  []string
	strategy  string
	admin     string
	logLevel  string
	logFormat string
}

// newFlags starts the flag set of command name with -c.
func newFlags(name, usage, configHelp string, stderr io.Writer) *globalFlags {
	g := &globalFlags{fs: pflag.NewFlagSet(name, pflag.ContinueOnError), usage: usage}
	g.fs.SetOutput(stderr)
	g.fs.SortFlags = false
	g.fs.StringVarP(&g.config, "config", "c", "", configHelp)
	return g
}

// newGlobalFlags is the flag set of serve, check and config.
func newGlobalFlags(name, usage string, stderr io.Writer) *globalFlags {
	g := newFlags(name, usage, "config file (default $HANDOFF_CONFIG, else /etc/handoff/handoff.yaml if it exists)", stderr)
	fs := g.fs
	fs.StringArrayVarP(&g.listen, "listen", "l", nil, "listen address for quick mode, repeatable (host:port or unix:/path)")
	fs.StringArrayVarP(&g.backends, "backend", "b", nil, "backend for quick mode, repeatable (host:port, http://…, https://…, h2c://…)")
	fs.StringVarP(&g.strategy, "strategy", "s", "", "load-balancing strategy for quick mode: "+strings.Join(config.Strategies(), ", "))
	fs.StringVar(&g.admin, "admin", "", `admin API address, or "off" (default 127.0.0.1:9901)`)
	fs.StringVar(&g.logLevel, "log-level", "", "debug, info, warn or error (default info)")
	fs.StringVar(&g.logFormat, "log-format", "", "json or text (default json)")
	return g
}

// newTargetFlags is the flag set of reload and upgrade, which act on a
// running handoff.
func newTargetFlags(name, usage string, stderr io.Writer) *globalFlags {
	g := newFlags(name, usage, "config file the running handoff uses, to learn its admin address (default $HANDOFF_CONFIG, else /etc/handoff/handoff.yaml if it exists)", stderr)
	g.fs.StringVar(&g.admin, "admin", "", `admin API address of the running handoff, or "off" to signal PID (default: from the config, else 127.0.0.1:9901)`)
	return g
}

// parse parses args and checks the enumerated values, so that a typo is a
// usage error (exit 2) rather than a config error.
func (g *globalFlags) parse(args []string) error {
	g.fs.Usage = func() {}
	if err := g.fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return &usageError{err}
	}
	if g.strategy != "" && !slices.Contains(config.Strategies(), g.strategy) {
		return usagef("invalid value %q for --strategy: allowed %s", g.strategy, strings.Join(config.Strategies(), ", "))
	}
	if g.logLevel != "" && !slices.Contains([]string{"debug", "info", "warn", "error"}, g.logLevel) {
		return usagef("invalid value %q for --log-level: allowed debug, info, warn, error", g.logLevel)
	}
	if g.logFormat != "" && g.logFormat != "json" && g.logFormat != "text" {
		return usagef("invalid value %q for --log-format: allowed json, text", g.logFormat)
	}
	return nil
}

// loadOptions are the options serve loads its config with: the layers
// from the flags and env (without the upgrade handshake's variables), and
// the names of the sockets systemd passed (sd_listen_fds(3)). check and
// config call it too, so that they load exactly as serve would.
func (g *globalFlags) loadOptions(env []string) (config.LoadOptions, error) {
	passed, err := activation.PassedNames(activation.Env{Getenv: envLookup(env)})
	if err != nil {
		return config.LoadOptions{}, fmt.Errorf("socket activation: %w", err)
	}
	return config.LoadOptions{
		File:        g.config,
		DefaultFile: config.DefaultFile,
		Env:         configEnv(env),
		Overrides: config.Overrides{
			Listen:    g.listen,
			Backends:  g.backends,
			Strategy:  g.strategy,
			Admin:     g.admin,
			LogLevel:  g.logLevel,
			LogFormat: g.logFormat,
		},
		ActivatedNames: passed,
	}, nil
}

// printUsage prints g's help to w.
func printUsage(w io.Writer, g *globalFlags) {
	io.WriteString(w, g.usage)
	g.fs.SetOutput(w)
	g.fs.PrintDefaults()
}

// helpOr prints the help when err asks for it, else returns err.
func helpOr(err error, stdout io.Writer, g *globalFlags) error {
	if errors.Is(err, pflag.ErrHelp) {
		printUsage(stdout, g)
		return nil
	}
	return err
}
