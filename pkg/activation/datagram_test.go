package activation

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

// echoOnce checks that pc receives a datagram sent to its address.
func echoOnce(t *testing.T, pc net.PacketConn) {
	t.Helper()
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 8)
	n, _, err := pc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "q" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
}

func TestListenDatagram(t *testing.T) {
	tests := []struct {
		name string
		// pass returns the files to pass and their names.
		pass    func(t *testing.T) ([]*os.File, []string)
		wants   []Want
		wantErr error
		// samePort reports whether the UDP socket must be on the TCP
		// listener's port.
		samePort bool
		passed   bool
	}{
		{
			name:     "bound beside the stream listener",
			wants:    []Want{{Name: "https", Address: "127.0.0.1:0"}, {Name: "https-quic", Datagram: true, AddressOf: "https"}},
			samePort: true,
		},
		{
			name: "bound beside a passed stream listener",
			pass: func(t *testing.T) ([]*os.File, []string) {
				f, _ := tcpListenerFile(t)
				return []*os.File{f}, []string{"https"}
			},
			wants:    []Want{{Name: "https"}, {Name: "https-quic", Datagram: true, AddressOf: "https"}},
			samePort: true,
		},
		{
			name: "passed by name",
			pass: func(t *testing.T) ([]*os.File, []string) {
				f, _ := tcpListenerFile(t)
				return []*os.File{f, udpFile(t)}, []string{"https", "https-quic"}
			},
			wants:  []Want{{Name: "https"}, {Name: "https-quic", Datagram: true, AddressOf: "https"}},
			passed: true,
		},
		{
			name:  "own address",
			wants: []Want{{Name: "q", Datagram: true, Address: "127.0.0.1:0"}},
		},
		{
			name: "stream socket passed for a datagram want",
			pass: func(t *testing.T) ([]*os.File, []string) {
				f, _ := tcpListenerFile(t)
				return []*os.File{f}, []string{"q"}
			},
			wants:   []Want{{Name: "q", Datagram: true}},
			wantErr: ErrNotDatagram,
		},
		{
			name:    "no address",
			wants:   []Want{{Name: "q", Datagram: true}},
			wantErr: ErrNoAddress,
		},
		{
			name:    "unix address",
			wants:   []Want{{Name: "q", Datagram: true, Address: "unix:/tmp/x"}},
			wantErr: ErrInvalidAddress,
		},
		{
			name:    "address_of names nothing",
			wants:   []Want{{Name: "q", Datagram: true, AddressOf: "https"}},
			wantErr: ErrInvalidName,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{Env: newFakeEnv().env(4242, 1)}
			if tt.pass != nil {
				files, names := tt.pass(t)
				first := passFDs(t, files...)
				_, opts = activationEnv(first, names...)
				defer assertFDsClosed(t, first, len(files))
			}
			opts.Logger = handofftest.Logger(t)
			set, err := Listen(t.Context(), opts, tt.wants)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer set.Close()
			d := tt.wants[len(tt.wants)-1]
			pcs := set.PacketConns(d.Name)
			if len(pcs) != 1 {
				t.Fatalf("%d packet conns, want 1", len(pcs))
			}
			if set.Listener(d.Name) != nil {
				t.Error("a datagram want has a stream listener")
			}
			if got := set.FromSystemd(d.Name); got != tt.passed {
				t.Errorf("FromSystemd = %v, want %v", got, tt.passed)
			}
			echoOnce(t, pcs[0])
			if tt.samePort {
				tcp := set.Listener("https").Addr().(*net.TCPAddr)
				udp := pcs[0].LocalAddr().(*net.UDPAddr)
				if tcp.Port != udp.Port || !tcp.IP.Equal(udp.IP) {
					t.Errorf("udp on %s, tcp on %s: want the same address", udp, tcp)
				}
			}
			files, err := set.Files()
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				for _, f := range files {
					f.File.Close()
				}
			}()
			if len(files) != len(tt.wants) || files[len(files)-1].Name != d.Name {
				t.Fatalf("files %v, want one per want", files)
			}
			// The duplicate is the same socket: it reads what is sent to
			// the port.
			dup, err := net.FilePacketConn(files[len(files)-1].File)
			if err != nil {
				t.Fatal(err)
			}
			defer dup.Close()
			echoOnce(t, dup)
		})
	}
}
