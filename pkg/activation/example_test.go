package activation_test

import (
	"context"
	"log/slog"

	"github.com/handoff-proxy/handoff/pkg/activation"
)

// Start-up as a systemd service: listeners by name (passed or self-bound),
// READY=1 once serving, the watchdog, and the self-bound sockets stored in
// the fd store so that a restart gets them back.
func Example() {
	ctx := context.Background()
	log := slog.Default()
	set, err := activation.Listen(ctx, activation.Options{SingleUnnamed: "http", Logger: log}, []activation.Want{
		{Name: "http", Address: ":8080"},
		{Name: "admin", Address: "127.0.0.1:9901"},
	})
	if err != nil {
		log.Error("listen", "err", err)
		return
	}
	defer set.Close()
	notify, err := activation.NewNotifier(activation.NotifierOptions{})
	if err != nil {
		log.Error("notify", "err", err)
		return
	}
	// ... hand set.Listener("http") and set.Listener("admin") to servers ...
	if files, err := set.Files(); err == nil {
		notify.FDStoreAll(files) // needs FileDescriptorStoreMax= in the unit
		for _, f := range files {
			f.File.Close()
		}
	}
	notify.Send(activation.NotifyReady, "STATUS=serving")
	wd, err := activation.NewWatchdog(activation.WatchdogOptions{
		Pinger:  notify,
		Healthy: func(ctx context.Context) bool { return true }, // prove the event loop is alive
		Logger:  log,
	})
	if err == nil {
		wd.Start()
		defer wd.Close()
	}
}
