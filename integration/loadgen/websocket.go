package loadgen

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/coder/websocket"
)

// WSOptions configures HoldWebSocket.
type WSOptions struct {
	// URL of the echo endpoint, ws:// or wss://. Required.
	URL string
	// Hold is how long the connection stays open. Zero means 5s.
	Hold time.Duration
	// Interval between echo messages. Zero means 500ms.
	Interval time.Duration
}

// WSResult is what HoldWebSocket saw.
type WSResult struct {
	OK       bool    `json:"ok"`
	Outcome  Outcome `json:"outcome"`
	Echoes   int     `json:"echoes"`
	Seconds  float64 `json:"seconds"`
	Error    string  `json:"error,omitempty"`
	Upgraded bool    `json:"upgraded"`
}

// HoldWebSocket opens a WebSocket, exchanges an echo message every
// opts.Interval for opts.Hold, then closes it normally. A failure at any
// step ends it early and is reported in the result, not as an error: the
// error return is for bad options only.
func HoldWebSocket(ctx context.Context, opts WSOptions) (WSResult, error) {
	if opts.URL == "" {
		return WSResult{}, errors.New("loadgen: no websocket URL")
	}
	hold, interval := opts.Hold, opts.Interval
	if hold <= 0 {
		hold = 5 * time.Second
	}
	if interval <= 0 {
		interval = 500 * time.Millisecond
	}
	start := time.Now()
	var res WSResult
	fail := func(err error) (WSResult, error) {
		res.Outcome = Classify(err)
		if res.Outcome == OK {
			res.Outcome = Other
		}
		res.Error = err.Error()
		res.Seconds = time.Since(start).Seconds()
		return res, nil
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	c, _, err := websocket.Dial(dctx, opts.URL, nil)
	cancel()
	if err != nil {
		return fail(fmt.Errorf("dial: %w", err))
	}
	defer c.CloseNow()
	res.Upgraded = true
	tick := time.NewTicker(interval)
	defer tick.Stop()
	deadline := time.NewTimer(hold)
	defer deadline.Stop()
	for i := 0; ; i++ {
		msg := []byte("echo " + strconv.Itoa(i))
		ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := c.Write(ectx, websocket.MessageText, msg)
		var got []byte
		if err == nil {
			_, got, err = c.Read(ectx)
		}
		cancel()
		if err != nil {
			return fail(fmt.Errorf("echo %d: %w", i, err))
		}
		if string(got) != string(msg) {
			return fail(fmt.Errorf("echo %d: got %q", i, got))
		}
		res.Echoes++
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-deadline.C:
			if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
				return fail(fmt.Errorf("close: %w", err))
			}
			res.OK, res.Outcome = true, OK
			res.Seconds = time.Since(start).Seconds()
			return res, nil
		case <-tick.C:
		}
	}
}
