package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
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
	case "status":
		return runStatus(ctx, args, stdout, stderr, env)
	case "version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help":
		printUsage(stdout, newGlobalFlags("handoff", usageText, stderr))
		return nil
	default:
		return usagef("unknown command %q", cmd)
	}
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
	opts.ReplaceAttr = durationString
	return slog.New(slog.NewJSONHandler(w, opts))
}

// durationString renders a time.Duration as Go writes it ("30s", as the
// text handler and the config do) instead of the JSON handler's integer
// nanoseconds.
func durationString(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
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

// runCheck loads the config as serve would and prints a summary or every
// problem.
func runCheck(args []string, stdout, stderr io.Writer, env []string) error {
	loaded, err := loadForCommand("check", checkUsage, args, stdout, stderr, env, nil)
	if loaded == nil {
		return err
	}
	fmt.Fprintf(stdout, "config OK (%s): %s\n", strings.Join(orNone(loaded.Files), ", "), loaded.Config.Summary())
	return nil
}

// loadForCommand parses the flags of check or config and loads the config
// as serve would with them, except that listeners without an address are
// assumed to come from systemd. extra registers the command's own flags.
// A nil *Loaded with a nil error means help was printed.
func loadForCommand(name, usage string, args []string, stdout, stderr io.Writer, env []string, extra func(*pflag.FlagSet)) (*config.Loaded, error) {
	g := newGlobalFlags(name, usage, stderr)
	if extra != nil {
		extra(g.fs)
	}
	if err := g.parse(args); err != nil {
		return nil, helpOr(err, stdout, g)
	}
	if g.fs.NArg() > 0 {
		return nil, usagef("%s takes no arguments, got %q", name, g.fs.Args())
	}
	opts, err := g.loadOptions(env)
	if err != nil {
		return nil, err
	}
	opts.AssumeActivated = true
	loaded, err := config.Load(opts)
	if err != nil {
		return nil, printConfigErrors(stderr, err)
	}
	return loaded, nil
}

func orNone(files []string) []string {
	if len(files) == 0 {
		return []string{"no file"}
	}
	return files
}

func runConfig(args []string, stdout, stderr io.Writer, env []string) error {
	var sources *bool
	loaded, err := loadForCommand("config", configUsage, args, stdout, stderr, env, func(fs *pflag.FlagSet) {
		sources = fs.Bool("sources", false, "annotate each key with the layer that set it")
	})
	if loaded == nil {
		return err
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

// redisLogger adapts go-redis's internal logger to slog at debug.
type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.l.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}
