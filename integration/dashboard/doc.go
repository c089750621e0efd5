// Package dashboard holds the real-browser test of the admin dashboard
// (build tag browser, run by `make dashboard-test`, part of `make test`):
// it starts the handoff binary with a healthy and a failing upstream and a
// cached route, opens "/" on the admin listener in headless Chromium, and
// checks the rendered page, the console and the resources it loads.
//
// It knows handoff only from the outside: the binary, its config file,
// its admin API and the page.
package dashboard
