// Command benchreg serves a distribution v3 registry on loopback, filled
// with random images, for scripts/bench/images.sh. It prints the image
// references (one a line) to -list, then serves until killed.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // the storage driver
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	dir := flag.String("dir", "", "storage folder")
	n := flag.Int("images", 20, "number of images")
	size := flag.Int64("size", 25<<20, "bytes per image")
	layers := flag.Int("layers", 3, "layers per image")
	list := flag.String("list", "", "write the references here")
	flag.Parse()
	logrus.SetOutput(io.Discard)
	cfg := &configuration.Configuration{}
	cfg.Storage = configuration.Storage{"filesystem": configuration.Parameters{"rootdirectory": *dir},
		"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}}}
	cfg.Log.AccessLog.Disabled = true
	app := handlers.NewApp(context.Background(), cfg)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	go func() { log.Fatal(http.Serve(ln, app)) }()
	host := ln.Addr().String()
	var refs []string
	for i := 0; i < *n; i++ {
		img, err := random.Image(*size/int64(*layers), int64(*layers))
		if err != nil {
			log.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", "amd64"
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			log.Fatal(err)
		}
		ref, _ := name.ParseReference(fmt.Sprintf("%s/bench/app%02d:1", host, i))
		if err := remote.Write(ref, img); err != nil {
			log.Fatal(err)
		}
		refs = append(refs, ref.String())
	}
	if err := os.WriteFile(*list, []byte(strings.Join(refs, "\n")+"\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	select {}
}
