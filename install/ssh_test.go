package install

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/sealpack/sealpack/cluster"
)

// sshServer is a real SSH server in-process, on a port of its own, that runs
// exec requests with sh: enough to test every way of logging in, host key
// handling and command timeouts without a test bed.
type sshServer struct {
	addr    string
	hostKey ssh.Signer
}

func newSSHServer(t *testing.T, password string, authorized ssh.PublicKey) *sshServer {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	hostKey, _ := ssh.NewSignerFromKey(priv)
	cfg := &ssh.ServerConfig{
		PasswordCallback: func(_ ssh.ConnMetadata, p []byte) (*ssh.Permissions, error) {
			if password != "" && string(p) == password {
				return nil, nil
			}
			return nil, errors.New("wrong password")
		},
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if authorized != nil && string(k.Marshal()) == string(authorized.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	cfg.AddHostKey(hostKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go serveSSH(nc, cfg)
		}
	}()
	return &sshServer{addr: ln.Addr().String(), hostKey: hostKey}
}

func serveSSH(nc net.Conn, cfg *ssh.ServerConfig) {
	_, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		nc.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	for nch := range chans {
		ch, requests, err := nch.Accept()
		if err != nil {
			continue
		}
		go func() {
			defer ch.Close()
			for req := range requests {
				if req.Type != "exec" {
					req.Reply(false, nil)
					continue
				}
				n := binary.BigEndian.Uint32(req.Payload)
				cmd := exec.Command("sh", "-c", string(req.Payload[4:4+n]))
				cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
				req.Reply(true, nil)
				status := 0
				if err := cmd.Run(); err != nil {
					status = 255
					var ee *exec.ExitError
					if errors.As(err, &ee) {
						status = ee.ExitCode()
					}
				}
				ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, uint32(status)))
				return
			}
		}()
	}
}

func (s *sshServer) node(t *testing.T, c cluster.SSH) cluster.Node {
	host, port, _ := net.SplitHostPort(s.addr)
	c.User = "root" // no sudo wrapping: the server runs commands as the test user
	c.Port = atoiT(t, port)
	return cluster.Node{IP: host, Roles: []string{"master"}, SSH: c}
}

func atoiT(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func knownHostsFor(t *testing.T, s *sshServer) string {
	p := filepath.Join(t.TempDir(), "known_hosts")
	host, port, _ := net.SplitHostPort(s.addr)
	line := "[" + host + "]:" + port + " " + string(ssh.MarshalAuthorizedKey(s.hostKey.PublicKey()))
	os.WriteFile(p, []byte(line), 0o600)
	return p
}

func writeKey(t *testing.T, priv ed25519.PrivateKey, passphrase string) string {
	var block *pem.Block
	var err error
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "id_ed25519")
	os.WriteFile(p, pem.EncodeToMemory(block), 0o600)
	return p
}

func TestSSHLogins(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	sshPub, _ := ssh.NewPublicKey(pub)
	srv := newSSHServer(t, "s3cret", sshPub)
	kh := knownHostsFor(t, srv)
	t.Setenv("HOME", t.TempDir()) // no default keys from the machine running the test
	t.Setenv("SSH_AUTH_SOCK", "")

	// An agent holding the key, on a unix socket as ssh-agent serves it.
	keyring := agent.NewKeyring()
	keyring.Add(agent.AddedKey{PrivateKey: priv})
	sock := filepath.Join(t.TempDir(), "agent.sock")
	al, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	go func() {
		for {
			c, err := al.Accept()
			if err != nil {
				return
			}
			go agent.ServeAgent(keyring, c)
		}
	}()

	cases := []struct {
		name    string
		ssh     cluster.SSH
		agent   bool
		wantErr string
	}{
		{name: "key", ssh: cluster.SSH{PrivateKey: writeKey(t, priv, "")}},
		{name: "encrypted key", ssh: cluster.SSH{PrivateKey: writeKey(t, priv, "pass phrase"), PrivateKeyPassword: "pass phrase"}},
		{name: "encrypted key without passphrase", ssh: cluster.SSH{PrivateKey: writeKey(t, priv, "pass phrase")}, wantErr: "is encrypted"},
		{name: "password", ssh: cluster.SSH{Password: "s3cret"}},
		{name: "wrong password", ssh: cluster.SSH{Password: "nope"}, wantErr: "unable to authenticate"},
		{name: "ssh-agent", agent: true},
		{name: "nothing", wantErr: "no SSH credentials"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.agent {
				t.Setenv("SSH_AUTH_SOCK", sock)
			}
			policy := &HostKeyPolicy{KnownHosts: kh}
			c, err := Dial(context.Background(), srv.node(t, tc.ssh), policy, &sync.Mutex{}, Timeouts{Dial: 5 * time.Second})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if out, err := c.Output(context.Background(), "echo hello from $((40+2))", time.Minute); err != nil || out != "hello from 42\n" {
				t.Errorf("Output = %q, %v", out, err)
			}
		})
	}
}

// dialKeyServer starts a server that takes one key and connects to it.
func dialKeyServer(t *testing.T) *Conn {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	sshPub, _ := ssh.NewPublicKey(pub)
	srv := newSSHServer(t, "", sshPub)
	node := srv.node(t, cluster.SSH{PrivateKey: writeKey(t, priv, "")})
	c, err := Dial(context.Background(), node, &HostKeyPolicy{KnownHosts: knownHostsFor(t, srv)}, &sync.Mutex{}, Timeouts{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestSSHCommandTimeoutsAndErrors(t *testing.T) {
	c := dialKeyServer(t)
	start := time.Now()
	_, err := c.Output(context.Background(), "sleep 30", 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "timed out") || time.Since(start) > 5*time.Second {
		t.Errorf("a hung command: err %v after %v, want a timeout", err, time.Since(start))
	}
	_, err = c.Output(context.Background(), "echo boom >&2; exit 3", time.Minute)
	var ce *CommandError
	if !errors.As(err, &ce) || ce.Status != 3 || ce.Stderr != "boom" {
		t.Errorf("failing command: %#v", err)
	}

	// Dialling a port where nothing listens fails after the retries, naming the host.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	host, port, _ := net.SplitHostPort(dead)
	deadNode := cluster.Node{IP: host, SSH: cluster.SSH{User: "root", Port: atoiT(t, port), Password: "x"}}
	if _, err := Dial(context.Background(), deadNode, &HostKeyPolicy{KnownHosts: filepath.Join(t.TempDir(), "kh")}, &sync.Mutex{}, Timeouts{Dial: time.Second}); err == nil || !strings.Contains(err.Error(), dead) {
		t.Errorf("dial to a closed port: %v", err)
	}
}

// A script's stdout and stderr arrive on two goroutines at once: every line
// of both must come out whole, as Log events, and nothing may crash.
func TestScriptOutputFromBothStreams(t *testing.T) {
	c := dialKeyServer(t)
	var mu sync.Mutex
	lines := map[string]bool{}
	e := &Engine{opts: Options{Timeouts: Timeouts{}.withDefaults(), Sink: SinkFunc(func(ev Event) {
		if ev.Kind == Log {
			mu.Lock()
			lines[ev.Message] = true
			mu.Unlock()
		}
	})}}
	const n = 3000
	script := fmt.Sprintf("i=0; while [ $i -lt %d ]; do echo out-$i; echo err-$i >&2; i=$((i+1)); done; exit 7", n)
	err := e.runScript(context.Background(), c, "test", "both streams", t.TempDir(), nil, script)
	var ce *CommandError
	if !errors.As(err, &ce) || ce.Status != 7 || !strings.Contains(ce.Stderr, fmt.Sprintf("-%d", n-1)) {
		t.Errorf("error = %v, want exit 7 with the last lines", err)
	}
	for i := 0; i < n; i++ {
		for _, s := range []string{"out", "err"} {
			if l := fmt.Sprintf("%s-%d", s, i); !lines[l] {
				t.Fatalf("line %q missing or garbled (%d lines seen)", l, len(lines))
			}
		}
	}
}
