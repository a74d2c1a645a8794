package install

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/sealpack/sealpack/cluster"
)

// hostKeyAlgorithms lists the host key algorithms to offer node: those of
// the key types recorded for it (its pinned key, else its known_hosts lines),
// nil when none is recorded (trust on first use then takes the library's
// default). The server presents the key of the first algorithm both sides
// know, so offering every algorithm would make a host that merely gained a
// key of another type (an RSA key added, a server preferring ECDSA) present
// a key nobody recorded, reported as a changed key although OpenSSH, which
// does the same as this, connects fine. A key of a recorded type that differs
// is still refused by the host key callback.
func (p *HostKeyPolicy) hostKeyAlgorithms(node cluster.Node, mu *sync.Mutex) ([]string, error) {
	if node.HostKey != "" {
		// A pinned fingerprint does not say the key's type: every plain
		// key algorithm is offered, and dialHostKey narrows them.
		if strings.HasPrefix(node.HostKey, "SHA256:") {
			return algorithmsFor([]string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoRSA}), nil
		}
		key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(node.HostKey))
		if err != nil {
			return nil, fmt.Errorf("%s: hostKey in the answers file: %w", node.IP, err)
		}
		return algorithmsFor([]string{key.Type()}), nil
	}
	path := p.knownHostsPath()
	mu.Lock()
	defer mu.Unlock()
	check, err := knownhosts.New(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	remote, err := net.ResolveTCPAddr("tcp", node.Addr())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", node.Addr(), err)
	}
	// knownhosts lists every key recorded for the host when asked about one
	// it cannot have: a key of zeros.
	probe, err := ssh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	if err != nil {
		return nil, err
	}
	var ke *knownhosts.KeyError
	if err := check(node.Addr(), remote, probe); !errors.As(err, &ke) {
		return nil, nil // nothing recorded, or the zero key revoked: the callback decides
	}
	var types []string
	for _, k := range ke.Want {
		types = append(types, k.Key.Type())
	}
	return algorithmsFor(types), nil
}

// algorithmsFor maps key types, in order, to the host key algorithms that
// prove them: an RSA key signs with SHA-512 or SHA-256, and with SHA-1
// (ssh-rsa) last, for servers older than OpenSSH 7.2, as the library's
// default offers it.
func algorithmsFor(types []string) []string {
	var algos []string
	for _, t := range types {
		as := []string{t}
		if t == ssh.KeyAlgoRSA {
			as = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
		}
		for _, a := range as {
			if !slices.Contains(algos, a) {
				algos = append(algos, a)
			}
		}
	}
	return algos
}

// dialHostKey dials node. A host pinned by fingerprint that presents a key
// of another type than the pinned one is asked again without that type,
// until it presents the pinned key or has no other type: only the pinned
// key is ever accepted, whatever the order of the host's keys, and a host
// without it is refused as the first key it presented was.
func dialHostKey(ctx context.Context, node cluster.Node, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	c := *cfg
	var mismatch error // the first key that was not the pinned one
	for {
		client, err := dialContext(ctx, node.Addr(), &c)
		var hk *HostKeyError
		if !strings.HasPrefix(node.HostKey, "SHA256:") || !errors.As(err, &hk) || !hk.Pinned {
			if err != nil && mismatch != nil {
				// The host has no other key type to offer (or the narrowed
				// dial failed): what the user must hear is that the key
				// it showed is not the pinned one.
				return nil, mismatch
			}
			return client, err
		}
		if mismatch == nil {
			mismatch = err
		}
		left := slices.DeleteFunc(slices.Clone(c.HostKeyAlgorithms), func(a string) bool {
			return slices.Contains(algorithmsFor([]string{hk.KeyType}), a)
		})
		if len(left) == 0 || len(left) == len(c.HostKeyAlgorithms) {
			return nil, mismatch
		}
		c.HostKeyAlgorithms = left
	}
}
