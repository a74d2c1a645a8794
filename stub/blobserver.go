package stub

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sealpack/sealpack/bundle"
)

// Hosts pass rootfs layers to each other during an install, so the
// installing machine's link carries each layer once or twice, not once per
// host. A host that has the layers serves them with serve-blobs; a host that
// needs them fetches with fetch-blob. Integrity comes from the digests (the
// fetcher verifies every blob against the index the engine trusts); the
// token, given in the environment so it never shows in a process list, keeps
// other machines on the network from reading the layers.
const blobTokenEnv = "SEALPACK_BLOB_TOKEN"

func agentServeBlobs(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "agent serve-blobs", "--addr IP:PORT (--dir DIR | --bundle FILE)", "Serve verified blobs to other hosts of the install.")
	addr := fs.String("addr", "", "listen address; port 0 picks one")
	dir := fs.String("dir", "", "blob directory")
	bundlePath := fs.String("bundle", "", "serve the blobs of this bundle file")
	addrFile := fs.String("addr-file", "", "write the address listened on to this file")
	idle := fs.Duration("idle-timeout", 30*time.Minute, "exit after this long without a request")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	token := os.Getenv(blobTokenEnv)
	if token == "" {
		return errors.New("serve-blobs: " + blobTokenEnv + " is not set")
	}
	open := func(digest string) (io.ReadSeeker, error) {
		p, err := blobPath(*dir, digest)
		if err != nil {
			return nil, err
		}
		return os.Open(p)
	}
	if *bundlePath != "" {
		b, err := bundle.Open(*bundlePath)
		if err != nil {
			return err
		}
		defer b.Close()
		open = func(digest string) (io.ReadSeeker, error) {
			sr, _, err := b.Blob(digest)
			return sr, err
		}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile+".tmp", []byte(ln.Addr().String()), 0o600); err != nil {
			return err
		}
		if err := os.Rename(*addrFile+".tmp", *addrFile); err != nil {
			return err
		}
	}
	seen := make(chan struct{}, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case seen <- struct{}{}:
		default:
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+token)) != 1 {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		digest := strings.TrimPrefix(r.URL.Path, "/blobs/")
		f, err := open(digest)
		if err != nil {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		if c, ok := f.(io.Closer); ok {
			defer c.Close()
		}
		http.ServeContent(w, r, "", time.Time{}, f)
	})}
	go func() {
		t := time.NewTimer(*idle)
		for {
			select {
			case <-seen:
				t.Reset(*idle)
			case <-t.C:
				srv.Close()
				return
			case <-ctx.Done():
				srv.Close()
				return
			}
		}
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func agentFetchBlob(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "agent fetch-blob", "--from IP:PORT --digest D --dir DIR", "Fetch a blob from another host and store it if it matches D.")
	from := fs.String("from", "", "address of a host running serve-blobs")
	digest := fs.String("digest", "", "expected digest")
	dir := fs.String("dir", "", "blob directory")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+*from+"/blobs/"+*digest, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+os.Getenv(blobTokenEnv))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetch %s from %s: %w", *digest, *from, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch %s from %s: %s", *digest, *from, resp.Status)
	}
	return storeBlob(ctx, resp.Body, *dir, *digest)
}

// storeBlob writes r as blob digest under dir, only if it hashes to digest:
// a blob file that exists is a verified blob.
func storeBlob(ctx context.Context, r io.Reader, dir, digest string) error {
	dst, err := blobPath(dir, digest)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".receive-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), ctxReader{ctx, r})
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("receive %s: %w", digest, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("receive %s: got %d bytes hashing to %s: transfer corrupted", digest, n, got)
	}
	return os.Rename(tmp.Name(), dst)
}
