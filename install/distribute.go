package install

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sealpack/sealpack/agent"
	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/internal/progress"
)

// uploadTimeout bounds one transfer; generous, since a slow link to a big
// bundle is normal, but a stuck transfer still ends.
const uploadTimeout = 2 * time.Hour

// progressReader reports bytes read as Progress events, at most ten a second.
type progressReader struct {
	r        io.Reader
	n, total int64
	last     time.Time
	emit     func(done, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if now := time.Now(); now.Sub(p.last) > 100*time.Millisecond || err != nil {
		p.last = now
		p.emit(p.n, p.total)
	}
	return n, err
}

// upload streams r to a file on the host, checks its SHA-256 there, and
// moves it into place only if it matches.
func (e *Engine) upload(ctx context.Context, c *Conn, phase, step string, r io.Reader, size int64, digest, dst string, mode string) error {
	hex := strings.TrimPrefix(digest, "sha256:")
	tmp := dst + ".partial"
	// the file is private until its mode is set: a key never shows wider
	cmd := sha256Shell + fmt.Sprintf("mkdir -p \"$(dirname %[1]s)\" && (umask 077 && cat > %[2]s) && sha256ok %[3]s %[2]s && chmod %[4]s %[2]s && mv -f %[2]s %[1]s || { rm -f %[2]s; echo 'checksum mismatch after transfer' >&2; exit 1; }",
		shellQuote(dst), shellQuote(tmp), hex, mode)
	pr := &progressReader{r: r, total: size, emit: func(done, total int64) {
		e.emit(Event{Kind: Progress, Host: c.Node.IP, Phase: phase, Step: step, Bytes: done, Total: total})
	}}
	var errOut strings.Builder
	err := c.Exec(ctx, cmd, pr, io.Discard, &errOut, uploadTimeout)
	if ce, ok := err.(*CommandError); ok {
		ce.Stderr = strings.TrimSpace(errOut.String())
		ce.Cmd = "upload " + dst
	}
	return err
}

// distribute puts the installer program and the merged rootfs on every
// host. The first master receives the whole bundle from this machine (its
// registry serves the images from it) and unpacks from that copy. The other
// hosts receive the stub, then the rootfs layers from another host, which
// forwards them while they arrive: the hosts form chains fed by the first
// master, so this machine's link carries the bundle once and a chain of
// hosts takes about as long as one transfer. Every blob is verified on
// arrival; a host whose upstream fails gets the layers from this machine.
func (e *Engine) distribute(ctx context.Context, nodes []cluster.Node) error {
	// the lead: the first master, or in its place (absent) another master,
	// which holds the same bundle copy
	m0 := e.lead()
	var sent atomic.Int64
	start := time.Now()
	token, err := randomToken()
	if err != nil {
		return err
	}
	// Hosts free to feed another; a host joins as soon as it starts
	// receiving, and feeds one host at a time.
	sources := make(chan source, len(nodes)+1)
	// Hosts free to hand their program (the agent) to another: a host
	// joins as soon as it has its own. A pool of its own: in the one pool,
	// hosts waiting for their program took every source handed back before
	// any host that had its program could begin its layers, and became
	// sources only then, so at 40 hosts the first master handed out 39
	// programs one after another (4 minutes at 10 Mbit/s).
	programs := make(chan source, len(nodes)+1)
	var servers []cluster.Node
	var serversMu sync.Mutex
	defer func() {
		// The blob servers live only as long as the distribution.
		bg := context.WithoutCancel(ctx)
		for _, n := range servers {
			if c, err := e.conn(bg, n); err == nil {
				c.Output(bg, e.stopBlobServerScript(), time.Minute)
			}
		}
	}()
	serve := func(ctx context.Context, n cluster.Node, what agent.ServeBlobs) (source, bool) {
		addr, err := e.startBlobServer(ctx, n, what, token)
		if err != nil {
			e.emit(Event{Kind: Info, Host: n.IP, Phase: "distribute", Message: "cannot serve layers to other hosts: " + err.Error()})
			return source{}, false
		}
		serversMu.Lock()
		servers = append(servers, n)
		serversMu.Unlock()
		return source{host: n, addr: addr, bundle: n.IP == m0.IP}, true
	}
	shared := len(nodes) > 1

	one := func(ctx context.Context, n cluster.Node) error {
		prog, size, digest, err := e.programFor(n)
		if err != nil {
			return err
		}
		if err := e.stepID(ctx, n, "distribute", "stub", digest, func(ctx context.Context, c *Conn) (string, error) {
			// Hosts but the first master take the agent from a host that
			// has it, as they take the layers: this machine sends it once.
			if n.IP != m0.IP && shared && e.opts.Bundle.Index.Agent != "" {
				var src source
				select {
				case src = <-programs:
					defer func() { programs <- src }()
				case <-ctx.Done():
					return "", ctx.Err()
				}
				if src.addr != "" {
					err := e.fetchProgram(ctx, c, src, digest, size, token)
					if err == nil {
						return progress.Bytes(size) + " from " + src.host.IP, nil
					}
					e.emit(Event{Kind: Info, Host: n.IP, Phase: "distribute", Message: fmt.Sprintf("program from %s failed (%v): sending from this machine", src.host.IP, err)})
				}
			}
			sent.Add(size)
			return progress.Bytes(size), e.upload(ctx, c, "distribute", "stub", prog, size, digest, e.stubPath(), "755")
		}); err != nil {
			if n.IP == m0.IP && shared {
				// the first master cannot feed anyone: this machine does
				sources <- source{}
				programs <- source{}
			}
			return err
		}
		if n.IP == m0.IP {
			self, ok := source{}, false
			if shared {
				self, ok = serve(ctx, n, agent.ServeBlobs{File: e.bundleCopyPath()})
			}
			if ok {
				sources <- self
				programs <- self
			}
			err := e.copyBundle(ctx, n, &sent)
			if !ok && shared {
				// no server there: feed from this machine
				sources <- source{}
				programs <- source{}
			}
			if err != nil {
				return err
			}
			return e.unpackBundle(ctx, n)
		}
		// From now on the host hands its program on, while it waits for
		// its layers and while they arrive; the same server forwards them.
		self, serving := source{}, false
		if shared && e.opts.Bundle.Index.Agent != "" {
			if self, serving = serve(ctx, n, agent.ServeBlobs{Dir: e.blobDir()}); serving {
				programs <- self
			}
		}
		serveOnce := func(ctx context.Context, n cluster.Node, what agent.ServeBlobs) (source, bool) {
			if serving {
				return self, true
			}
			return serve(ctx, n, what)
		}
		if err := e.distributeLayers(ctx, n, &sent, sources, token, serveOnce); err != nil {
			return err
		}
		if err := e.imageLayout(ctx, n); err != nil {
			return err
		}
		return e.unpackLayers(ctx, n)
	}
	// The first master feeds everyone: it runs on its own, beside the
	// others, which wait for the sources it and they offer.
	var others []cluster.Node
	m0err := make(chan error, 1)
	for _, n := range nodes {
		if n.IP == m0.IP {
			go func() { m0err <- e.hostDone(ctx, "distribute", n, one(ctx, n)) }()
		} else {
			others = append(others, n)
		}
	}
	if len(others) == len(nodes) {
		m0err <- nil
	}
	// Every host at once, whatever --parallel says: the fan-out bounds the
	// load (each host feeds one other at a time, this machine sends the
	// installer about once), and hosts held back in waves would only wait
	// for their turn: 40 hosts at 10 Mbit/s took 166 s in waves of 8 and
	// 76 s at once, against 36 s for one host.
	err = forEach(ctx, e.live(others), 0, func(ctx context.Context, n cluster.Node) error {
		return e.hostDone(ctx, "distribute", n, one(ctx, n))
	})
	err = errors.Join(<-m0err, err)
	e.emit(Event{Kind: Info, Phase: "distribute", Message: fmt.Sprintf("sent %s from this machine in %v", progress.Bytes(sent.Load()), time.Since(start).Round(time.Millisecond))})
	return err
}

// programFor is what runs on a host: the first master gets the whole stub
// (it runs the registry and verifies the bundle); other hosts get the small
// agent when the bundle carries one.
func (e *Engine) programFor(n cluster.Node) (io.Reader, int64, string, error) {
	b := e.opts.Bundle
	if n.IP == e.c.Master0().IP || b.Index.Agent == "" {
		return b.StubReader(), b.Trailer.StubSize, b.Index.Stub.Digest, nil
	}
	sr, bl, err := b.Blob(b.Index.Agent)
	if err != nil {
		return nil, 0, "", err
	}
	return sr, bl.Size, bl.Digest, nil
}

// source is where a host gets its layers: this machine (host zero) or
// another host's blob server.
type source struct {
	host   cluster.Node
	addr   string
	bundle bool // serves ranges of its bundle copy, not blobs by digest
}

func randomToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make a transfer token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// readToken is shell text that reads the transfer token from the first
// line of standard input into the agent's environment: never an argument.
const readToken = "read -r " + agent.TokenEnv + " && export " + agent.TokenEnv

// startBlobServer starts serve-blobs on a host in the background and
// returns the address it listens on. What (Dir or File) is the caller's;
// the token goes through stdin.
func (e *Engine) startBlobServer(ctx context.Context, n cluster.Node, what agent.ServeBlobs, token string) (string, error) {
	c, err := e.conn(ctx, n)
	if err != nil {
		return "", err
	}
	addrFile, pidFile := e.remote("state", "blobs.addr"), e.remote("state", "blobs.pid")
	what.Addr, what.AddrFile, what.IdleTimeout = netJoin(n.IP, "0"), addrFile, 10*time.Minute
	link := ""
	if agentD := e.opts.Bundle.Index.Agent; what.Dir != "" && agentD != "" {
		// The host's program goes beside its blobs (a hard link), so that
		// the server hands it on to hosts that do not have it yet.
		prog := what.Dir + "/sha256/" + strings.TrimPrefix(agentD, "sha256:")
		link = fmt.Sprintf("mkdir -p %[1]s && { [ -e %[2]s ] || ln -f %[3]s %[2]s; } || exit 1\n", shellQuote(what.Dir+"/sha256"), shellQuote(prog), shellQuote(e.stubPath()))
	}
	script := e.stopBlobServerScript() + "\n" + link + fmt.Sprintf(`
%[1]s
mkdir -p "$(dirname %[3]s)"; rm -f %[3]s
setsid %[2]s >/dev/null 2>&1 </dev/null &
pidrecord $! > %[4]s
i=0; until [ -s %[3]s ]; do i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.1; done
cat %[3]s`, readToken, agent.Line(e.stubPath(), what), shellQuote(addrFile), shellQuote(pidFile))
	var out strings.Builder
	if err := c.Exec(ctx, script, strings.NewReader(token+"\n"), &out, io.Discard, time.Minute); err != nil {
		return "", err
	}
	return strings.TrimSpace(out.String()), nil
}

// stopBlobServerScript stops the host's blob server, if its pid file still
// names it.
func (e *Engine) stopBlobServerScript() string {
	return procShell + fmt.Sprintf(`
ours %[1]s serve-blobs && kill "$(cut -d' ' -f1 %[1]s)" 2>/dev/null
rm -f %[1]s
true`, shellQuote(e.remote("state", "blobs.pid")))
}

func netJoin(host, port string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

func (e *Engine) bundleCopyPath() string { return e.remote("bundle", "installer.run") }

// copyBundle copies the whole bundle as one file to the first master and
// verifies every byte there with the copied program. The file starts with
// the stub, which the host already has (the step before): only the rest
// crosses the link, so this machine sends the installer once.
func (e *Engine) copyBundle(ctx context.Context, n cluster.Node, sent *atomic.Int64) error {
	b := e.opts.Bundle
	return e.stepID(ctx, n, "distribute", "bundle", e.bundleID(), func(ctx context.Context, c *Conn) (string, error) {
		pr, pw := io.Pipe()
		go func() {
			_, err := b.WriteSingleFrom(pw, b.Trailer.StubSize)
			pw.CloseWithError(err)
		}()
		dst := e.bundleCopyPath()
		cmd := fmt.Sprintf("mkdir -p \"$(dirname %[1]s)\" && chmod 0700 \"$(dirname %[1]s)\" && (umask 077 && { cat %[3]s && cat; } > %[2]s) && %[3]s verify --quiet --bundle %[2]s && mv -f %[2]s %[1]s || { rm -f %[2]s; exit 1; }",
			shellQuote(dst), shellQuote(dst+".partial"), shellQuote(e.stubPath()))
		size := b.SingleSize() - b.Trailer.StubSize
		rd := &progressReader{r: pr, total: size, emit: func(done, total int64) {
			e.emit(Event{Kind: Progress, Host: n.IP, Phase: "distribute", Step: "bundle", Bytes: done, Total: total})
		}}
		var errOut strings.Builder
		err := c.Exec(ctx, cmd, rd, io.Discard, &errOut, uploadTimeout)
		pr.CloseWithError(io.ErrClosedPipe)
		if ce, ok := err.(*CommandError); ok {
			ce.Stderr, ce.Cmd = strings.TrimSpace(errOut.String()), "copy and verify the bundle"
		}
		sent.Add(size)
		return progress.Bytes(size) + " verified", err
	})
}

// unpackBundle builds the first master's rootfs from its bundle copy.
func (e *Engine) unpackBundle(ctx context.Context, n cluster.Node) error {
	return e.stepID(ctx, n, "distribute", "rootfs", e.rootfsID(), func(ctx context.Context, c *Conn) (string, error) {
		out, err := c.Output(ctx, agent.Line(e.stubPath(), agent.Unpack{Bundle: e.bundleCopyPath(), To: e.rootfsPath()}), time.Hour)
		return strings.TrimSpace(out), err
	})
}

// distributeLayers gives a host the blobs it lacks (hostBlobs): from a free
// source, a host that has them or is receiving them, in one command (a
// chain: every host asks for the same blobs in the same order), or from
// this machine when there is no such host or it fails (then only what did
// not arrive). Each blob is verified on arrival. Before receiving, the host
// starts its own blob server and offers itself as a source, forwarding
// what arrives.
func (e *Engine) distributeLayers(ctx context.Context, n cluster.Node, sent *atomic.Int64, sources chan source, token string, serve func(context.Context, cluster.Node, agent.ServeBlobs) (source, bool)) error {
	b := e.opts.Bundle
	return e.stepID(ctx, n, "distribute", "layers", e.hostBlobsID(), func(ctx context.Context, c *Conn) (string, error) {
		missing := func() ([]bundle.Blob, error) {
			have, err := c.Output(ctx, fmt.Sprintf("mkdir -p %[1]s && ls %[1]s", shellQuote(e.blobDir()+"/sha256")), time.Minute)
			if err != nil {
				return nil, err
			}
			present := map[string]bool{}
			for _, h := range strings.Fields(have) {
				present["sha256:"+h] = true
			}
			var need []bundle.Blob
			for _, bl := range e.hostBlobs() {
				if !present[bl.Digest] {
					present[bl.Digest] = true
					need = append(need, bl)
				}
			}
			return need, nil
		}
		need, err := missing()
		if err != nil || len(need) == 0 {
			return "all blobs present", err
		}
		var src source
		select {
		case s, ok := <-sources:
			if ok {
				src = s
				defer func() { sources <- src }()
			}
		case <-ctx.Done():
			return "", ctx.Err()
		}
		if self, ok := serve(ctx, n, agent.ServeBlobs{Dir: e.blobDir()}); ok {
			sources <- self
		}
		var total int64
		layers := 0
		for _, bl := range need {
			total += bl.Size
			if bl.MediaType == bundle.MediaTypeRootfsLayer {
				layers++
			}
		}
		what := fmt.Sprintf("%d layers and %d image blobs", layers, len(need)-layers)
		if src.addr != "" {
			err := e.fetchBlobs(ctx, c, src, need, token)
			if err == nil {
				return fmt.Sprintf("%s, %s from %s", what, progress.Bytes(total), src.host.IP), nil
			}
			if ctx.Err() != nil {
				return "", err
			}
			e.emit(Event{Kind: Info, Host: n.IP, Phase: "distribute", Message: fmt.Sprintf("blobs from %s failed (%v): sending what did not arrive from this machine", src.host.IP, err)})
			if need, err = missing(); err != nil {
				return "", err
			}
		}
		var bytes int64
		for _, bl := range need {
			sr, bl, err := b.Blob(bl.Digest)
			if err != nil {
				return "", err
			}
			if err := e.receiveBlob(ctx, c, bl, sr); err != nil {
				return "", err
			}
			sent.Add(bl.Size)
			bytes += bl.Size
		}
		return fmt.Sprintf("%s, %s from this machine", what, progress.Bytes(bytes)), nil
	})
}

// hostBlobs is what every host but the lead keeps in its blob directory:
// the rootfs layers, then the blobs of the bundle's container images, which
// its image's scripts load into the container runtime (SEALPACK_IMAGES) so
// that nodes do not pull them from the masters' registries: 200 nodes
// pulling 50 MB each would be 10 GB through the masters' links, while the
// fan-out carries them from host to host.
func (e *Engine) hostBlobs() []bundle.Blob {
	idx := e.opts.Bundle.Index
	var out []bundle.Blob
	for _, l := range idx.Layers {
		// no error: opening the bundle checked that every layer's blob exists
		if _, bl, err := e.opts.Bundle.Blob(l.Digest); err == nil {
			out = append(out, bl)
		}
	}
	return append(out, idx.ImageBlobs()...)
}

// hostBlobsID names hostBlobs: the digest of its ordered list.
func (e *Engine) hostBlobsID() string {
	h := sha256.New()
	for _, bl := range e.hostBlobs() {
		io.WriteString(h, bl.Digest+"\n")
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// fetchBlobs has the host fetch blobs from src's blob server, in order, in
// one command.
func (e *Engine) fetchBlobs(ctx context.Context, c *Conn, src source, blobs []bundle.Blob, token string) error {
	fetch := agent.FetchBlob{From: src.addr, Bundle: src.bundle, Dir: e.blobDir()}
	for _, bl := range blobs {
		fetch.Blobs = append(fetch.Blobs, agent.BlobRef{Digest: bl.Digest, Size: bl.Size, Offset: bl.Offset})
	}
	var errOut strings.Builder
	err := c.Exec(ctx, readToken+" && exec "+agent.Line(e.stubPath(), fetch), strings.NewReader(token+"\n"), io.Discard, &errOut, uploadTimeout)
	if ce, ok := err.(*CommandError); ok {
		ce.Stderr, ce.Cmd = strings.TrimSpace(errOut.String()), fmt.Sprintf("fetch %d blobs from %s", len(blobs), src.host.IP)
	}
	return err
}

// fetchScript fetches a blob from another host's blob server with bash's
// /dev/tcp, before the host has any program of ours: the token comes on
// stdin (never in an argument), the response's headers are read a line at a
// time (bash reads sockets a byte at a time, so the body is untouched), and
// the file is moved into place only when its SHA-256 matches. Exit 90: no
// bash on this host.
const fetchScript = `command -v bash >/dev/null 2>&1 || exit 90
exec bash -c '` + sha256Shell + `
set -e
read -r T
host=$1 port=$2 path=$3 dst=$4 hex=$5
mkdir -p "$(dirname "$dst")"
exec 3<>"/dev/tcp/$host/$port"
printf "GET %s HTTP/1.0\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n" "$path" "$host" "$T" >&3
IFS= read -r status <&3 || true
case $status in "HTTP/1."?" 200"*) ;; *) echo "blob server answered: ${status%$(printf "\r")}" >&2; exit 1 ;; esac
while IFS= read -r line <&3; do line=${line%$(printf "\r")}; [ -z "$line" ] && break; done
cat <&3 > "$dst.partial"
if sha256ok "$hex" "$dst.partial"; then chmod 755 "$dst.partial"; mv -f "$dst.partial" "$dst"
else rm -f "$dst.partial"; echo "checksum mismatch" >&2; exit 1; fi
' sealpack-fetch "$@"`

// fetchProgram has the host fetch its program from src's blob server.
func (e *Engine) fetchProgram(ctx context.Context, c *Conn, src source, digest string, size int64, token string) error {
	b := e.opts.Bundle
	path := fmt.Sprintf("/blobs/%s?size=%d", digest, size)
	if src.bundle {
		_, bl, err := b.Blob(digest)
		if err != nil {
			return err
		}
		path = fmt.Sprintf("/range/%d/%d", bl.Offset, bl.Size)
	}
	host, port, err := net.SplitHostPort(src.addr)
	if err != nil {
		return err
	}
	cmd := "set -- " + strings.Join([]string{shellQuote(host), shellQuote(port), shellQuote(path), shellQuote(e.stubPath()), shellQuote(strings.TrimPrefix(digest, "sha256:"))}, " ") + "\n" + fetchScript
	var errOut strings.Builder
	err = c.Exec(ctx, cmd, strings.NewReader(token+"\n"), io.Discard, &errOut, 10*time.Minute)
	var ce *CommandError
	if errors.As(err, &ce) {
		if ce.Status == 90 {
			return errors.New("no bash on the host to fetch with")
		}
		ce.Stderr, ce.Cmd = strings.TrimSpace(errOut.String()), "fetch the program"
	}
	return err
}

// receiveBlob sends a blob from this machine; the host stores it if it
// matches its digest.
func (e *Engine) receiveBlob(ctx context.Context, c *Conn, bl bundle.Blob, sr *io.SectionReader) error {
	cmd := agent.Line(e.stubPath(), agent.ReceiveBlob{Digest: bl.Digest, Dir: e.blobDir()})
	pr := &progressReader{r: io.NewSectionReader(sr, 0, bl.Size), total: bl.Size, emit: func(done, total int64) {
		e.emit(Event{Kind: Progress, Host: c.Node.IP, Phase: "distribute", Step: "layers", Bytes: done, Total: total})
	}}
	var errOut strings.Builder
	err := c.Exec(ctx, cmd, pr, io.Discard, &errOut, uploadTimeout)
	if ce, ok := err.(*CommandError); ok {
		ce.Stderr, ce.Cmd = strings.TrimSpace(errOut.String()), "receive blob "+bl.Digest
	}
	return err
}

// unpackLayers builds the host's rootfs from its blobs.
func (e *Engine) unpackLayers(ctx context.Context, n cluster.Node) error {
	return e.stepID(ctx, n, "distribute", "rootfs", e.rootfsID(), func(ctx context.Context, c *Conn) (string, error) {
		u := agent.Unpack{Blobs: e.blobDir(), To: e.rootfsPath()}
		for _, l := range e.opts.Bundle.Index.Layers {
			u.Layers = append(u.Layers, l.Digest)
		}
		_, err := c.Output(ctx, agent.Line(e.stubPath(), u), time.Hour)
		return "", err
	})
}

// bundleID names the bundle's content: its index digest covers every byte.
func (e *Engine) bundleID() string {
	return "sha256:" + hex.EncodeToString(e.opts.Bundle.Trailer.IndexSHA256[:])
}

// rootfsID names the merged rootfs: the digest of its ordered layer list.
func (e *Engine) rootfsID() string {
	h := sha256.New()
	for _, l := range e.opts.Bundle.Index.Layers {
		fmt.Fprintln(h, l.Digest)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// imagesPath is the OCI image layout of the bundle's container images on
// every host but the first master (which serves them from its bundle).
func (e *Engine) imagesPath() string { return e.remote("images") }

// imageLayout makes the host's OCI image layout of the bundle's container
// images (imagesPath, SEALPACK_IMAGES to scripts) from the blobs it holds:
// blobs/ hard links to exactly the images' blobs, index.json names each
// image (io.containerd.image.name) so `ctr images import` keeps its name.
// It is built beside, then moved into place.
func (e *Engine) imageLayout(ctx context.Context, n cluster.Node) error {
	index, blobs, err := e.imageIndex()
	if err != nil || len(blobs) == 0 {
		return err
	}
	return e.stepID(ctx, n, "distribute", "images", digestOf(string(index)), func(ctx context.Context, c *Conn) (string, error) {
		var list strings.Builder
		for _, bl := range blobs {
			list.WriteString(strings.TrimPrefix(bl.Digest, "sha256:") + "\n")
		}
		script := fmt.Sprintf(`set -e
L=%[1]s; B=%[2]s
rm -rf "$L.new"; mkdir -p "$L.new/blobs/sha256"
while read -r h; do ln -f "$B/$h" "$L.new/blobs/sha256/$h"; done
printf '%%s' %[3]s > "$L.new/%[4]s"
printf '%%s' %[5]s > "$L.new/index.json"
rm -rf "$L"; mv "$L.new" "$L"`, shellQuote(e.imagesPath()), shellQuote(e.blobDir()+"/sha256"),
			shellQuote(`{"imageLayoutVersion":"`+ocispec.ImageLayoutVersion+`"}`), ocispec.ImageLayoutFile, shellQuote(string(index)))
		var errOut strings.Builder
		err := c.Exec(ctx, script, strings.NewReader(list.String()), io.Discard, &errOut, time.Minute)
		if ce, ok := err.(*CommandError); ok {
			ce.Stderr, ce.Cmd = strings.TrimSpace(errOut.String()), "make the image layout "+e.imagesPath()
		}
		return fmt.Sprintf("%d images", len(e.opts.Bundle.Index.Images)), err
	})
}

// imageIndex is the OCI index of the bundle's images, and their blobs.
func (e *Engine) imageIndex() ([]byte, []bundle.Blob, error) {
	b := e.opts.Bundle
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	for _, img := range b.Index.Images {
		_, bl, err := b.Blob(img.Digest)
		if err != nil {
			return nil, nil, fmt.Errorf("image %s: %w", img.Name, err)
		}
		idx.Manifests = append(idx.Manifests, ocispec.Descriptor{
			MediaType: img.MediaType, Digest: digest.Digest(img.Digest), Size: bl.Size,
			Annotations: map[string]string{"io.containerd.image.name": img.Name, ocispec.AnnotationRefName: img.Name},
		})
	}
	j, err := json.Marshal(idx)
	return j, b.Index.ImageBlobs(), err
}
