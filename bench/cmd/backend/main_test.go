package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRunPrintsAddressesAndServes starts the command, reads the JSON line,
// fetches /1k, then cancels and expects a clean exit.
func TestRunPrintsAddressesAndServes(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, pw, io.Discard); pw.Close() }()
	line, err := bufio.NewReader(pr).ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	var a Addrs
	if err := json.Unmarshal(line, &a); err != nil || a.HTTP == "" || a.TCP == "" || a.HTTPS != "" {
		t.Fatalf("addresses %q: %+v %v", line, a, err)
	}
	tr := &http.Transport{}
	resp, err := (&http.Client{Transport: tr}).Get("http://" + a.HTTP + "/1k")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	tr.CloseIdleConnections()
	if resp.StatusCode != 200 || n != 1024 {
		t.Fatalf("status %d, %d bytes", resp.StatusCode, n)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func TestRunBadFlag(t *testing.T) {
	if err := run(t.Context(), []string{"-nope"}, io.Discard, io.Discard); err == nil {
		t.Fatal("want error")
	}
}
