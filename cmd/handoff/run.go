package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/server"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// usageError is a bad command line: exit code 2 and a one-line message.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// reportedError has already been printed in full; main only sets the exit
// code.
type reportedError struct{ err error }

func (e *reportedError) Error() string { return e.err.Error() }
func (e *reportedError) Unwrap() error { return e.err }

const usageText = `handoff: a reverse proxy and load balancer native to systemd.

Usage:
  handoff [serve] [flags]        run the proxy (the default)
  handoff check [-c PATH]        validate the config as serve would load it
  handoff config [-c PATH] [--sources]
                                 print the effective merged config as YAML
  handoff reload [--admin ADDR] [PID]
                                 reload a running handoff (ExecReload=); upgrades
                                 instead when PID's binary was replaced on disk
  handoff upgrade [--admin ADDR] [PID]
                                 replace a running handoff with the binary on disk
                                 without closing a socket (or send it SIGUSR2)
  handoff version                print the version

Quick mode, no config file needed:
  handoff -l 127.0.0.1:8080 -b 127.0.0.1:9001 -b 127.0.0.1:9002 -s round_robin

Flags:
`

// globalFlags are shared by serve, check and config: they feed the config
// layers.
type globalFlags struct {
	fs        *pflag.FlagSet
	config    string
	listen    []string
	backends  []string
	strategy  string
	admin     string
	logLevel  string
	logFormat string
}

func newGlobalFlags(name string, stderr io.Writer) *globalFlags {
	g := &globalFlags{fs: pflag.NewFlagSet(name, pflag.ContinueOnError)}
	fs := g.fs
	fs.SetOutput(stderr)
	fs.SortFlags = false
	fs.StringVarP(&g.config, "config", "c", "", "config file (default $HANDOFF_CONFIG, else /etc/handoff/handoff.yaml if it exists)")
	fs.StringArrayVarP(&g.listen, "listen", "l", nil, "listen address for quick mode, repeatable (host:port or unix:/path)")
	fs.StringArrayVarP(&g.backends, "backend", "b", nil, "backend for quick mode, repeatable (host:port, http://…, https://…, h2c://…)")
	fs.StringVarP(&g.strategy, "strategy", "s", "", "load-balancing strategy for quick mode: "+strings.Join(config.Strategies(), ", "))
	fs.StringVar(&g.admin, "admin", "", `admin API address, or "off" (default 127.0.0.1:9901)`)
	fs.StringVar(&g.logLevel, "log-level", "", "debug, info, warn or error (default info)")
	fs.StringVar(&g.logFormat, "log-format", "", "json or text (default json)")
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

func (g *globalFlags) loadOptions(env []string, activated []string) config.LoadOptions {
	return config.LoadOptions{
		File:        g.config,
		DefaultFile: "/etc/handoff/handoff.yaml",
		Env:         env,
		Overrides: config.Overrides{
			Listen:    g.listen,
			Backends:  g.backends,
			Strategy:  g.strategy,
			Admin:     g.admin,
			LogLevel:  g.logLevel,
			LogFormat: g.logFormat,
		},
		ActivatedNames: activated,
	}
}

// run is the whole program; main only maps its error to an exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, env []string) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return runServe(ctx, args, stdout, stderr, env)
	case "check":
		return runCheck(args, stdout, stderr, env)
	case "config":
		return runConfig(args, stdout, stderr, env)
	case "reload":
		return runReload(ctx, args, stdout, stderr, env)
	case "upgrade":
		return runUpgrade(ctx, args, stdout, stderr, env)
	case "version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help":
		printUsage(stdout, newGlobalFlags("handoff", stderr))
		return nil
	default:
		return usagef("unknown command %q", cmd)
	}
}

func printUsage(w io.Writer, g *globalFlags) {
	fmt.Fprint(w, usageText)
	g.fs.SetOutput(w)
	g.fs.PrintDefaults()
}

func versionString() string {
	rev := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				rev = " " + s.Value[:12]
			}
		}
	}
	features := "idle_exit upgrade fdstore watchdog"
	if server.DebugHang {
		features += " debughang"
	}
	return fmt.Sprintf("handoff %s%s\nfeatures: %s", version, rev, features)
}

// newLogger builds the process logger from the log config. Access logs
// and server logs both go to w (stdout), which journald captures.
func newLogger(w io.Writer, lc config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(lc.Level))
	opts := &slog.HandlerOptions{Level: level}
	if lc.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// printConfigErrors prints every problem found, one per line.
func printConfigErrors(w io.Writer, err error) error {
	var errs config.Errors
	if errors.As(err, &errs) {
		fmt.Fprintf(w, "handoff: config has %d problem(s):\n", len(errs))
		for _, e := range errs {
			fmt.Fprintf(w, "  %s\n", e)
		}
		return &reportedError{err}
	}
	return err
}

func runCheck(args []string, stdout, stderr io.Writer, env []string) error {
	g := newGlobalFlags("check", stderr)
	if err := g.parse(args); err != nil {
		return helpOr(err, stdout, g)
	}
	if g.fs.NArg() > 0 {
		return usagef("check takes no arguments, got %q", g.fs.Args())
	}
	opts := g.loadOptions(env, nil)
	opts.AssumeActivated = true
	loaded, err := config.Load(opts)
	if err != nil {
		return printConfigErrors(stderr, err)
	}
	fmt.Fprintf(stdout, "config OK (%s): %s\n", strings.Join(orNone(loaded.Files), ", "), loaded.Config.Summary())
	return nil
}

func orNone(files []string) []string {
	if len(files) == 0 {
		return []string{"no file"}
	}
	return files
}

func runConfig(args []string, stdout, stderr io.Writer, env []string) error {
	g := newGlobalFlags("config", stderr)
	sources := g.fs.Bool("sources", false, "annotate each key with the layer that set it")
	if err := g.parse(args); err != nil {
		return helpOr(err, stdout, g)
	}
	if g.fs.NArg() > 0 {
		return usagef("config takes no arguments, got %q", g.fs.Args())
	}
	opts := g.loadOptions(env, nil)
	opts.AssumeActivated = true
	loaded, err := config.Load(opts)
	if err != nil {
		return printConfigErrors(stderr, err)
	}
	var out []byte
	if *sources {
		out, err = loaded.SourcesYAML()
	} else {
		out, err = config.MarshalYAML(config.Redacted(loaded.Config))
	}
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}

func helpOr(err error, stdout io.Writer, g *globalFlags) error {
	if errors.Is(err, pflag.ErrHelp) {
		printUsage(stdout, g)
		return nil
	}
	return err
}
