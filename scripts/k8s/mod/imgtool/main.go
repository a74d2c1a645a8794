// imgtool builds the container images of the kubernetes base image and serves them to gen.
//
//	imgtool build -layout DIR -ref REPO:TAG -root ROOTDIR -entrypoint PATH[,ARG...]
//	    one single-layer linux/amd64 image of ROOTDIR (a deterministic tar: sorted, owner 0,
//	    mtime 0), added to the OCI layout DIR under the ref name REPO:TAG (replacing one of that name)
//	imgtool serve -layout DIR [-addr 127.0.0.1:5055] -- CMD [ARG...]
//	    an in-memory registry on ADDR holding every named image of DIR at ADDR/REPO:TAG while CMD
//	    runs; exits with CMD's status. CMD gets IMGTOOL_REGISTRY=ADDR and IMGTOOL_IMAGES (the refs).
//	imgtool files -root DIR [-addr 127.0.0.1:0] -- CMD [ARG...]
//	    DIR as static files over plain HTTP on ADDR while CMD runs (a stand-in for dl.k8s.io in
//	    scripts/k8s/test-release-source.sh); exits with CMD's status. CMD gets IMGTOOL_FILES=http://ADDR.
//
// A port of 0 picks a free one; the address given to CMD is the one actually listened on.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const refAnnotation = "org.opencontainers.image.ref.name"

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: imgtool build|serve|files ..."))
	}
	var err error
	switch os.Args[1] {
	case "build":
		err = build(os.Args[2:])
	case "serve":
		err = serve(os.Args[2:])
	case "files":
		err = files(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			os.Exit(ee.ExitCode())
		}
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "imgtool:", err)
	os.Exit(1)
}

func build(args []string) error {
	fl := flag.NewFlagSet("build", flag.ExitOnError)
	dir := fl.String("layout", "", "OCI layout to add to")
	ref := fl.String("ref", "", "REPO:TAG")
	root := fl.String("root", "", "root folder of the image")
	ep := fl.String("entrypoint", "", "entrypoint, comma-separated")
	fl.Parse(args)
	if *dir == "" || *ref == "" || *root == "" || *ep == "" {
		return errors.New("build needs -layout, -ref, -root and -entrypoint")
	}
	data, err := tarDir(*root)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config.Entrypoint = strings.Split(*ep, ",")
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return err
	}
	p, err := layout.FromPath(*dir)
	if err != nil {
		if p, err = layout.Write(*dir, empty.Index); err != nil {
			return err
		}
	}
	opt := layout.WithAnnotations(map[string]string{refAnnotation: *ref})
	plat := layout.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"})
	if err := p.ReplaceImage(img, match.Annotation(refAnnotation, *ref), opt, plat); err != nil {
		return err
	}
	d, _ := img.Digest()
	fmt.Printf("%s %s layer %.1f MB\n", *ref, d, float64(len(data))/1e6)
	return nil
}

// tarDir is a reproducible tar of root: sorted names, owner 0, mtime 0, modes kept.
func tarDir(root string) ([]byte, error) {
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			return nil, err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return nil, err
			}
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return nil, err
		}
		rel, _ := filepath.Rel(root, p)
		h.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			h.Name += "/"
		}
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		h.ModTime, h.AccessTime, h.ChangeTime = time.Unix(0, 0), time.Time{}, time.Time{}
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return nil, err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func serve(args []string) error {
	fl := flag.NewFlagSet("serve", flag.ExitOnError)
	dir := fl.String("layout", "", "OCI layout to serve")
	addr := fl.String("addr", "127.0.0.1:5055", "listen address")
	fl.Parse(args)
	if *dir == "" || fl.NArg() == 0 {
		return errors.New("serve needs -layout and a command after --")
	}
	p, err := layout.FromPath(*dir)
	if err != nil {
		return err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	host := ln.Addr().String()
	stop := start(ln, registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer stop()
	var refs []string
	for _, d := range im.Manifests {
		rn := d.Annotations[refAnnotation]
		if rn == "" {
			continue
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return err
		}
		r, err := name.ParseReference(host+"/"+rn, name.Insecure)
		if err != nil {
			return err
		}
		if err := remote.Write(r, img); err != nil {
			return fmt.Errorf("push %s: %w", r, err)
		}
		refs = append(refs, r.String())
	}
	sort.Strings(refs)
	return run(fl.Args(), "IMGTOOL_REGISTRY="+host, "IMGTOOL_IMAGES="+strings.Join(refs, " "))
}

func files(args []string) error {
	fl := flag.NewFlagSet("files", flag.ExitOnError)
	root := fl.String("root", "", "folder to serve")
	addr := fl.String("addr", "127.0.0.1:0", "listen address")
	fl.Parse(args)
	if *root == "" || fl.NArg() == 0 {
		return errors.New("files needs -root and a command after --")
	}
	if fi, err := os.Stat(*root); err != nil || !fi.IsDir() {
		return fmt.Errorf("files: %s is not a folder", *root)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	defer start(ln, http.FileServer(http.Dir(*root)))()
	return run(fl.Args(), "IMGTOOL_FILES=http://"+ln.Addr().String())
}

// start serves h on ln in the background; the returned func stops it.
func start(ln net.Listener, h http.Handler) func() {
	srv := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(ln)
	return func() { srv.Shutdown(context.Background()) }
}

// run runs argv with the caller's stdio and environment plus env.
func run(argv []string, env ...string) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), env...)
	return cmd.Run()
}
