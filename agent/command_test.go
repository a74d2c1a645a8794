package agent

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Every command the engine can build comes back from a real shell and the
// agent's parser as the same value, with awkward paths included.
func TestCommandLinesRoundTrip(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	odd := "/var/lib/data root/it's \"here\" $HOME `id` \\ -x"
	cases := []Command{
		ReceiveBlob{Digest: digest, Dir: odd},
		FetchBlob{From: "10.0.0.2:4000", Blobs: []BlobRef{{Digest: digest, Size: 123456789}}, Dir: odd},
		FetchBlob{From: "[fd00::2]:4000", Bundle: true, Blobs: []BlobRef{{Digest: digest, Size: 7}}, Dir: "-dir"},
		FetchBlob{From: "10.0.0.2:4000", Bundle: true, Blobs: []BlobRef{{Digest: digest, Size: 7, Offset: 1 << 40}, {Digest: digest, Size: 0, Offset: 3}}, Dir: odd},
		ServeBlobs{Addr: "10.0.0.1:0", Dir: odd, AddrFile: odd + ".addr", IdleTimeout: 10 * time.Minute},
		ServeBlobs{Addr: "[fd00::1]:0", File: odd},
		Unpack{To: odd, Bundle: odd + ".run"},
		APIProxy{Listen: "127.0.0.1:6443", Backends: []string{"10.0.0.1:6443", "[fd00::1]:6443"}, BackendsFile: odd, Interval: 3 * time.Second},
		APIProxy{Listen: "127.0.0.1:6443", BackendsFile: odd},
		APIProxy{Listen: "127.0.0.1:6443", Backends: []string{"10.0.0.1:6443"}, HealthPath: "/readyz"},
		APIProxy{Listen: "127.0.0.1:6443", BackendsFile: odd, Interval: time.Second, HealthPath: "/readyz?exclude=etcd&verbose"},
		Unpack{To: odd, Blobs: odd, Layers: []string{digest, "sha256:" + strings.Repeat("01", 32)}},
	}
	// The "program" prints the words the shell gives it, NUL-terminated.
	prog := filepath.Join(t.TempDir(), "print args")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\nprintf '%s\\0' \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, want := range cases {
		line := Line(prog, want)
		out, err := exec.CommandContext(t.Context(), "sh", "-c", line).Output()
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		words := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
		if words[0] != "agent" {
			t.Fatalf("%s: first word %q, want agent", line, words[0])
		}
		got, err := Parse(words[1:], io.Discard)
		if err != nil {
			t.Fatalf("parse %q: %v", words[1:], err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s\nparsed as %#v\nwant      %#v", line, got, want)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{nil, "expected receive-blob"},
		{[]string{"rm-rf"}, `unknown command "rm-rf"`},
		{[]string{"unpack", "--to=/x", "extra"}, "unexpected arguments"},
		{[]string{"receive-blob", "--nope=1"}, "unknown flag"},
		{[]string{"fetch-blob", "--size=big"}, "unknown flag"},
		{[]string{"fetch-blob", "--blob=sha256:ab,big,0"}, `blob "sha256:ab,big,0": bad size`},
		{[]string{"fetch-blob", "--blob=sha256:ab,1"}, "want DIGEST,SIZE,OFFSET"},
		{[]string{"fetch-blob", "--blob=sha256:ab,1,-4"}, "bad offset"},
	}
	for _, tc := range cases {
		if _, err := Parse(tc.args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want %q", tc.args, err, tc.want)
		}
	}
}
