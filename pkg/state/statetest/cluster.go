package statetest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clusterBusOffset is the distance Redis Cluster puts its bus port above
// the client port (redis.conf: cluster-port defaults to port+10000).
const clusterBusOffset = 10000

// StartCluster starts a three-master Redis Cluster on loopback (no
// replicas), waits until every node reports cluster_state:ok, and returns
// the node addresses. The nodes stop when the test ends.
func StartCluster(t testing.TB) []string {
	t.Helper()
	RequireRedis(t)
	dir := t.TempDir()
	var addrs []string
	for range 3 {
		port := freePort(t, clusterBusOffset)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		r := &Redis{t: t, dir: dir, Addr: addr, args: []string{
			"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
			"--dir", dir, "--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes-"+strconv.Itoa(port)+".conf"),
			"--cluster-node-timeout", "2000",
		}}
		if err := r.start(); err != nil {
			t.Fatalf("start cluster node: %v", err)
		}
		t.Cleanup(r.Stop)
		addrs = append(addrs, addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, addr := range addrs {
		for {
			host, port, _ := net.SplitHostPort(addr)
			out, err := exec.Command("redis-cli", "-h", host, "-p", port, "cluster", "info").CombinedOutput()
			if err == nil && strings.Contains(string(out), "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster node %s not ok after 15s: %v\n%s", addr, err, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return addrs
}

// Sentinel is a Redis master watched by one Redis Sentinel.
type Sentinel struct {
	// MasterName is the name the sentinel monitors the master under.
	MasterName string
	// MasterAddr is the master's host:port.
	MasterAddr string
	// Addrs holds the sentinel's host:port.
	Addrs []string
}

// StartSentinel starts a master and a sentinel (quorum 1) monitoring it
// as "handoff-test", waits until the sentinel names the master, and stops
// both when the test ends.
func StartSentinel(t testing.TB) Sentinel {
	t.Helper()
	master := StartRedis(t)
	const name = "handoff-test"
	dir := t.TempDir()
	host, mport, _ := net.SplitHostPort(master.Addr)
	var last error
	for range 5 {
		port := freePort(t, 0)
		// The sentinel rewrites its config file, so it lives in the
		// temporary directory (sentinel.conf in the redis-server package).
		conf := filepath.Join(dir, "sentinel-"+strconv.Itoa(port)+".conf")
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s 1\n"+
			"sentinel down-after-milliseconds %s 5000\n", port, dir, name, host, mport, name)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		s := &Redis{t: t, dir: dir, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
		if last = s.startCmd("redis-server", conf, "--sentinel"); last != nil {
			continue
		}
		t.Cleanup(s.Stop)
		deadline := time.Now().Add(10 * time.Second)
		for {
			reply, err := Command(s.Addr, "SENTINEL", "get-master-addr-by-name", name)
			if err == nil && reply == "*2" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sentinel %s does not name master %s: %q %v", s.Addr, name, reply, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		return Sentinel{MasterName: name, MasterAddr: master.Addr, Addrs: []string{s.Addr}}
	}
	t.Fatalf("start redis sentinel: %v", last)
	return Sentinel{}
}
