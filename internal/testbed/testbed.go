// Package testbed gives end-to-end tests N real SSH hosts on this machine.
//
// Each host is a network namespace on a private bridge with its own sshd,
// hostname and private /etc, /opt, /var/lib, /usr/local, /root, /home, /tmp
// and /run. The test process is the "installing host": it reaches every host
// through the bridge. Nothing routes off the bridge.
//
// The work is done by scripts/testbed/testbed.sh, so a bed built by hand and a
// bed built by a test are the same thing; this package runs the script and
// turns its state file into typed values.
//
// Beds need root, ip, sshd and util-linux. Without them New skips the test,
// or fails it when CI=true so that a CI run never passes by skipping.
package testbed

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Root is the user that logs in with the bed's client key.
const Root = "root"

// scriptTimeout bounds one run of the script; "up" of a few hosts takes
// about a second, so this is only hit when something hangs. "up" and
// "down" get perHostTimeout more for each host: the kernel makes network
// namespaces one at a time, about a second each on a busy machine.
const (
	scriptTimeout  = 2 * time.Minute
	perHostTimeout = 5 * time.Second
)

func bedTimeout(hosts int) time.Duration { return scriptTimeout + time.Duration(hosts)*perHostTimeout }

// Host is one machine of a bed.
type Host struct {
	Name           string        // hostname inside the host: "h1", "h2", ...
	IP             netip.Addr    // address on the bed's bridge
	Port           int           // sshd port
	Netns          string        // network namespace, for "ip netns exec"
	HostKey        ssh.PublicKey // sshd's ed25519 host key
	KnownHostsLine string        // "IP ssh-ed25519 AAAA...", one known_hosts line
	Fingerprint    string        // "SHA256:...", as ssh-keygen -l prints it
	DiskLimit      string        // tmpfs size under /var/lib, "" when unlimited
	Bandwidth      string        // tc rate set when the bed was built, "" when none
}

// Addr is the host's "IP:port" for ssh.Dial.
func (h Host) Addr() string {
	return net.JoinHostPort(h.IP.String(), strconv.Itoa(h.Port))
}

// Bed is a set of hosts built for one test. Methods that take i address
// Hosts[i] (zero-based: Hosts[0] is h1).
type Bed struct {
	Name     string       // registry name, unique among live beds
	Dir      string       // per-bed state: keys, overlay upper dirs, logs
	Subnet   netip.Prefix // the bridge's /24
	Gateway  netip.Addr   // this machine's address on the bridge
	Bridge   string       // bridge interface name
	Hosts    []Host
	KeyPath  string // client private key (OpenSSH format) accepted for Root on every host
	Key      []byte // contents of KeyPath
	User     string // non-root user with password login and passwordless sudo
	Password string // User's password, the same on every host

	script    string
	closeOnce sync.Once
	closeErr  error
}

type options struct {
	name      string
	diskLimit map[int]string
	bandwidth map[int]string
}

// Option changes how New builds a bed.
type Option func(*options) error

// WithName sets the bed's name instead of the one derived from the test
// name. A stale bed of the same name, left by a killed run, is torn down
// first; a live one makes New fail.
func WithName(name string) Option {
	return func(o *options) error {
		if !validName.MatchString(name) {
			return fmt.Errorf("bed name %q: want letters, digits, '.', '_', '-', at most 64", name)
		}
		o.name = name
		return nil
	}
}

// WithDiskLimit puts a tmpfs of size (as mount -o size= takes it: "64M")
// under Hosts[i]'s /var/lib, so df shows size and writes beyond it fail with
// ENOSPC. The real /var/lib stays readable. Default: no limit.
func WithDiskLimit(i int, size string) Option {
	return func(o *options) error {
		if !validSize.MatchString(size) {
			return fmt.Errorf("disk limit %q: want a tmpfs size such as 64M", size)
		}
		o.diskLimit[i] = size
		return nil
	}
}

// WithBandwidth limits Hosts[i]'s link to rate (a tc rate such as "10mbit")
// in both directions with a token bucket. It needs tc. Default: no limit.
func WithBandwidth(i int, rate string) Option {
	return func(o *options) error {
		if !validRate.MatchString(rate) {
			return fmt.Errorf("bandwidth %q: want a tc rate such as 10mbit", rate)
		}
		o.bandwidth[i] = rate
		return nil
	}
}

var (
	validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	validSize = regexp.MustCompile(`^[0-9]+[kKmMgG%]?$`)
	validRate = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?[a-zA-Z]*$`)
	// nameUnsafe matches what a derived bed name may not contain.
	nameUnsafe = regexp.MustCompile(`[^A-Za-z0-9._-]+`)
)

// New builds a bed of n hosts for tb and tears it down in tb's cleanup. It
// skips tb (fails it under CI=true) when the machine cannot host a bed, and
// fails tb when building the bed fails.
func New(tb testing.TB, n int, opts ...Option) *Bed {
	tb.Helper()
	o := options{diskLimit: map[int]string{}, bandwidth: map[int]string{}}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			tb.Fatalf("testbed: %v", err)
		}
	}
	for _, m := range []map[int]string{o.diskLimit, o.bandwidth} {
		for i := range m {
			if i < 0 || i >= n {
				tb.Fatalf("testbed: option for host index %d, but the bed has hosts 0..%d", i, n-1)
			}
		}
	}
	if reason := missingRequirement(); reason != "" {
		skipOrFail(tb, reason)
		return nil
	}
	script, err := findScript()
	if err != nil {
		tb.Fatalf("testbed: %v", err)
	}
	// TempDir before Cleanup: cleanups run last-in first-out, so the bed is
	// torn down before the testing package removes its directory.
	dir := tb.TempDir()
	name := o.name
	if name == "" {
		name = deriveName(tb.Name(), dir)
	}
	b := &Bed{Name: name, Dir: dir, script: script}
	tb.Cleanup(func() {
		if err := b.Close(); err != nil {
			tb.Errorf("testbed: %v", err)
		}
	})

	args := []string{"up", name, strconv.Itoa(n), "--dir", dir, "--owner", strconv.Itoa(os.Getpid())}
	for _, i := range slices.Sorted(maps.Keys(o.diskLimit)) {
		args = append(args, "--disk-limit", fmt.Sprintf("%d=%s", i+1, o.diskLimit[i]))
	}
	for _, i := range slices.Sorted(maps.Keys(o.bandwidth)) {
		args = append(args, "--bandwidth", fmt.Sprintf("%d=%s", i+1, o.bandwidth[i]))
	}
	ctx, cancel := context.WithTimeout(context.Background(), bedTimeout(n))
	defer cancel()
	start := time.Now()
	if _, err := b.run(ctx, args...); err != nil {
		tb.Fatalf("testbed: build bed %s of %d hosts: %v", name, n, err)
	}
	if err := b.load(); err != nil {
		tb.Fatalf("testbed: read bed %s: %v", name, err)
	}
	tb.Logf("testbed: %s: %d hosts on %s (%s) in %v", name, n, b.Subnet, b.Bridge, time.Since(start).Round(time.Millisecond))
	return b
}

// Exec runs cmd with sh -c inside Hosts[i]'s namespaces as root, not over
// SSH, and returns its standard output. Use it for assertions and set-up
// that must not depend on the SSH path under test.
func (b *Bed) Exec(ctx context.Context, i int, cmd string) (string, error) {
	h, err := b.host(i)
	if err != nil {
		return "", err
	}
	out, err := b.run(ctx, "exec", b.Name, strconv.Itoa(i+1), "sh", "-c", cmd)
	if err != nil {
		return string(out), fmt.Errorf("exec %q on %s: %w", cmd, h.Name, err)
	}
	return string(out), nil
}

// StopSSH kills Hosts[i]'s sshd and every SSH connection to it, like a link
// that dies mid-install. Processes started over SSH get what they would get
// from a lost connection; the host and its files stay.
func (b *Bed) StopSSH(ctx context.Context, i int) error {
	h, err := b.host(i)
	if err != nil {
		return err
	}
	if _, err := b.run(ctx, "stop-ssh", b.Name, strconv.Itoa(i+1)); err != nil {
		return fmt.Errorf("stop sshd on %s: %w", h.Name, err)
	}
	return nil
}

// StartSSH starts Hosts[i]'s sshd again, with the same host key, and returns
// once it listens.
func (b *Bed) StartSSH(ctx context.Context, i int) error {
	h, err := b.host(i)
	if err != nil {
		return err
	}
	if _, err := b.run(ctx, "start-ssh", b.Name, strconv.Itoa(i+1)); err != nil {
		return fmt.Errorf("start sshd on %s: %w", h.Name, err)
	}
	return nil
}

// SetBandwidth changes Hosts[i]'s rate limit; "off" removes it.
func (b *Bed) SetBandwidth(ctx context.Context, i int, rate string) error {
	h, err := b.host(i)
	if err != nil {
		return err
	}
	if rate != "off" && !validRate.MatchString(rate) {
		return fmt.Errorf("bandwidth %q for %s: want a tc rate such as 10mbit, or off", rate, h.Name)
	}
	if _, err := b.run(ctx, "bandwidth", b.Name, strconv.Itoa(i+1), rate); err != nil {
		return fmt.Errorf("set bandwidth of %s to %s: %w", h.Name, rate, err)
	}
	return nil
}

// ClientConfig returns an SSH client configuration for Hosts[i] that pins
// its host key: Root logs in with the bed's key, b.User with its password.
func (b *Bed) ClientConfig(i int, user string) (*ssh.ClientConfig, error) {
	h, err := b.host(i)
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ClientConfig{
		User:            user,
		HostKeyCallback: ssh.FixedHostKey(h.HostKey),
		Timeout:         10 * time.Second,
	}
	switch user {
	case Root:
		signer, err := ssh.ParsePrivateKey(b.Key)
		if err != nil {
			return nil, fmt.Errorf("parse client key %s: %w", b.KeyPath, err)
		}
		cfg.Auth = []ssh.AuthMethod{ssh.PublicKeys(signer)}
	case b.User:
		cfg.Auth = []ssh.AuthMethod{ssh.Password(b.Password)}
	default:
		return nil, fmt.Errorf("no credentials for user %q on %s (have %s and %s)", user, h.Name, Root, b.User)
	}
	return cfg, nil
}

// KnownHosts returns a known_hosts file listing every host of the bed.
func (b *Bed) KnownHosts() []byte {
	var buf bytes.Buffer
	for _, h := range b.Hosts {
		buf.WriteString(h.KnownHostsLine)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// Close tears the bed down: every process in its hosts, the namespaces, the
// interfaces, the mounts and Dir. It is registered with the test's cleanup;
// calling it earlier is fine and later calls return the first result.
func (b *Bed) Close() error {
	b.closeOnce.Do(func() {
		// Not the test's context: it is already cancelled when cleanups run,
		// and teardown must happen anyway.
		ctx, cancel := context.WithTimeout(context.Background(), bedTimeout(len(b.Hosts)))
		defer cancel()
		if _, err := b.run(ctx, "down", b.Name); err != nil {
			b.closeErr = fmt.Errorf("tear down bed %s: %w", b.Name, err)
		}
	})
	return b.closeErr
}

func (b *Bed) host(i int) (Host, error) {
	if i < 0 || i >= len(b.Hosts) {
		return Host{}, fmt.Errorf("bed %s has no host index %d (0..%d)", b.Name, i, len(b.Hosts)-1)
	}
	return b.Hosts[i], nil
}

// run runs the script and returns its standard output; the error carries
// its standard error, which says what went wrong.
func (b *Bed) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "bash", append([]string{b.script}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A command run in a host may leave a child holding our pipes; do not
	// wait for it forever.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			return stdout.Bytes(), fmt.Errorf("testbed.sh %s: %w", args[0], err)
		}
		return stdout.Bytes(), fmt.Errorf("testbed.sh %s: %w: %s", args[0], err, msg)
	}
	return stdout.Bytes(), nil
}

// load reads the state file the script wrote into Dir.
func (b *Bed) load() error {
	env, err := readEnv(filepath.Join(b.Dir, "bed.env"))
	if err != nil {
		return err
	}
	if env["READY"] != "1" {
		return errors.New("bed.env is incomplete")
	}
	n, err := strconv.Atoi(env["N"])
	if err != nil {
		return fmt.Errorf("host count %q: %w", env["N"], err)
	}
	if b.Subnet, err = netip.ParsePrefix(env["SUBNET"]); err != nil {
		return fmt.Errorf("subnet: %w", err)
	}
	if b.Gateway, err = netip.ParseAddr(env["GATEWAY"]); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	b.Bridge = env["BRIDGE"]
	b.KeyPath = env["CLIENT_KEY"]
	b.User = env["PW_USER"]
	b.Password = env["PASSWORD"]
	if b.Key, err = os.ReadFile(b.KeyPath); err != nil {
		return fmt.Errorf("client key: %w", err)
	}
	b.Hosts = make([]Host, 0, n)
	for i := 1; i <= n; i++ {
		p := fmt.Sprintf("H%d_", i)
		h := Host{
			Name:      env[p+"NAME"],
			Port:      22,
			Netns:     env[p+"NETNS"],
			DiskLimit: env[p+"DISK_LIMIT"],
			Bandwidth: env[p+"BANDWIDTH"],
		}
		if h.IP, err = netip.ParseAddr(env[p+"IP"]); err != nil {
			return fmt.Errorf("address of host %d: %w", i, err)
		}
		pub, err := os.ReadFile(env[p+"HOSTKEY"])
		if err != nil {
			return fmt.Errorf("host key of %s: %w", h.Name, err)
		}
		if h.HostKey, _, _, _, err = ssh.ParseAuthorizedKey(pub); err != nil {
			return fmt.Errorf("host key of %s: %w", h.Name, err)
		}
		h.KnownHostsLine = knownhosts.Line([]string{knownhosts.Normalize(h.Addr())}, h.HostKey)
		h.Fingerprint = ssh.FingerprintSHA256(h.HostKey)
		b.Hosts = append(b.Hosts, h)
	}
	return nil
}

// readEnv parses the script's KEY=VALUE state file. Values never hold
// quotes or spaces, so there is no unquoting.
func readEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			env[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return env, nil
}

// deriveName names a bed after its package directory and test, so that a
// rerun of the same test finds and cleans what a killed run left, while
// tests of different packages running at the same time never share a name.
// dir tells apart several beds of one test (TempDir numbers its calls).
func deriveName(testName, dir string) string {
	cwd, _ := os.Getwd()
	sum := sha256.Sum256([]byte(cwd + "\x00" + testName + "\x00" + filepath.Base(dir)))
	clean := func(s string, max int) string {
		s = nameUnsafe.ReplaceAllString(s, "_")
		s = strings.Trim(s, "._-")
		if len(s) > max {
			s = s[:max]
		}
		return s
	}
	parts := []string{}
	for _, p := range []string{clean(filepath.Base(cwd), 16), clean(testName, 32), hex.EncodeToString(sum[:4])} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "-")
}

// missingRequirement says why this machine cannot host a bed, or "".
func missingRequirement() string {
	if os.Geteuid() != 0 {
		return "test bed needs root (network and mount namespaces)"
	}
	// sshd re-executes itself by absolute path, so the script uses this one.
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		return "test bed needs /usr/sbin/sshd (apt-get install openssh-server)"
	}
	// What testbed.sh needs beyond coreutils.
	var missing []string
	for _, tool := range []string{"bash", "ip", "ssh-keygen", "unshare", "nsenter", "setsid", "flock", "ss"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		return "test bed needs " + strings.Join(missing, ", ") + " (apt-get install iproute2 util-linux openssh-client)"
	}
	return ""
}

// skipOrFail skips tb for reason, except under CI where a skipped end-to-end
// test would look like a pass.
func skipOrFail(tb testing.TB, reason string) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("testbed: %s (CI=true: not skipping)", reason)
		return
	}
	tb.Skipf("testbed: %s", reason)
}

// findScript locates scripts/testbed/testbed.sh: $SEALPACK_TESTBED_SCRIPT,
// else the module root above the working directory (go test runs in the
// package directory).
func findScript() (string, error) {
	if p := os.Getenv("SEALPACK_TESTBED_SCRIPT"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("SEALPACK_TESTBED_SCRIPT: %w", err)
		}
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find testbed.sh: %w", err)
	}
	for {
		p := filepath.Join(dir, "scripts", "testbed", "testbed.sh")
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("find testbed.sh in module root %s: %w", dir, err)
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find testbed.sh: no go.mod above the working directory; set SEALPACK_TESTBED_SCRIPT")
		}
		dir = parent
	}
}
