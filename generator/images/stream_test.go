package images_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sealpack/sealpack/generator/images"
	"github.com/sealpack/sealpack/generator/internal/testreg"
)

// TestStreamAddFailsAfterDownloads: an add that fails once every blob is
// cached (the downloads' result already received) returns its error; it
// used to wait for that result a second time, forever.
func TestStreamAddFailsAfterDownloads(t *testing.T) {
	reg := testreg.Start(t)
	refs := parse(t,
		reg.Push(t, "a:1", testreg.Image(t, "amd64", 1, 512)),
		reg.Push(t, "b:1", testreg.Image(t, "amd64", 1, 512)),
		reg.Push(t, "c:1", testreg.Image(t, "amd64", 1, 512)),
	)
	c := &images.Cache{Dir: t.TempDir()}
	ctx := context.Background()
	if _, err := images.Stream(ctx, refs, images.FetchOptions{Cache: c}, func(images.Pulled) error { return nil }); err != nil {
		t.Fatal(err)
	}
	full := errors.New("disk full")
	// Cached: the downloads end at once, and the loop sees their result
	// instead of an image's readiness about half the time.
	for range 20 {
		n := 0
		res := make(chan error, 1)
		go func() {
			_, err := images.Stream(ctx, refs, images.FetchOptions{Cache: c}, func(images.Pulled) error {
				if n++; n == 1 {
					time.Sleep(5 * time.Millisecond) // the downloads end meanwhile
					return nil
				}
				return full
			})
			res <- err
		}()
		select {
		case err := <-res:
			if !errors.Is(err, full) {
				t.Fatalf("Stream = %v, want the add's error", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Stream hangs after add fails")
		}
	}
}
