package install

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sealpack/sealpack/cluster"
)

// localState is the installing host's record of finished steps, per host.
// The hosts' own markers decide what is skipped (they survive a lost laptop);
// this file tells the user, and join, what was done from here.
type localState struct {
	mu     sync.Mutex
	saveMu sync.Mutex // one writer of the file at a time
	path   string
	Hosts  map[string]map[string]string `json:"hosts"` // ip → step → time done
}

// loadState reads the state file. One that cannot be read or parsed (a
// crash of an older version, a disk error) is set aside as
// PATH.corrupt-TIME and warn is told: the hosts' own markers still say what
// is done, so the run goes on from an empty record instead of stopping.
func loadState(path string, warn func(string)) (*localState, error) {
	st := &localState{path: path, Hosts: map[string]map[string]string{}}
	if path == "" {
		return st, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err == nil {
		err = json.Unmarshal(data, st)
	}
	if err != nil {
		aside := path + ".corrupt-" + time.Now().UTC().Format("20060102T150405.000000000Z")
		if rerr := os.Rename(path, aside); rerr != nil {
			return nil, fmt.Errorf("install state %s is unreadable (%v) and cannot be set aside: %w", path, err, rerr)
		}
		warn(fmt.Sprintf("install state %s was unreadable (%v): set aside as %s; starting from an empty record (the hosts' markers still say what is done)", path, err, aside))
		return &localState{path: path, Hosts: map[string]map[string]string{}}, nil
	}
	if st.Hosts == nil {
		st.Hosts = map[string]map[string]string{}
	}
	return st, nil
}

func (s *localState) record(ip, step string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Hosts[ip] == nil {
		s.Hosts[ip] = map[string]string{}
	}
	if _, ok := s.Hosts[ip][step]; !ok {
		s.Hosts[ip][step] = time.Now().UTC().Format(time.RFC3339)
	}
}

// done says whether step is recorded as finished on the host.
func (s *localState) done(ip, step string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.Hosts[ip][step]
	return ok
}

func (s *localState) forget(ip string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.Hosts, ip)
}

// save writes the state atomically.
func (s *localState) save() error {
	if s.path == "" {
		return nil
	}
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.mu.Lock()
	data, err := json.MarshalIndent(s, "", "  ")
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("save install state: %w", err)
	}
	return writeFileDurable(s.path, data, 0o600)
}

// writeFileDurable replaces path with data so that after a crash or a power
// cut either the old or the new content is there, whole: the data is
// written to a temporary file and synced before the rename, and the
// directory is synced after it, so the rename itself is on disk too.
func writeFileDurable(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("sync the directory of %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync the directory of %s: %w", path, err)
	}
	return nil
}

// ClusterRecord is the file beside the state file that holds the answers
// of the cluster installed from this machine (inline secrets left out):
// written when an install or join finishes, removed when a reset does. It
// is how the installer, run with no arguments, knows there is a cluster to
// add hosts to, reset or upgrade.
const ClusterRecord = "cluster.yaml"

// recordCluster writes the cluster's record beside the state file.
func (e *Engine) recordCluster() error {
	if e.opts.StateFile == "" {
		return nil
	}
	data, err := e.c.Marshal(cluster.MarshalOptions{})
	if err != nil {
		return fmt.Errorf("record the installed cluster: %w", err)
	}
	return cluster.Save(filepath.Join(filepath.Dir(e.opts.StateFile), ClusterRecord), data)
}

// forgetCluster removes the record: the cluster is reset.
func (e *Engine) forgetCluster() error {
	if e.opts.StateFile == "" {
		return nil
	}
	if err := os.Remove(filepath.Join(filepath.Dir(e.opts.StateFile), ClusterRecord)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("forget the reset cluster: %w", err)
	}
	return nil
}

// InstalledCluster reads the record of the cluster installed from the state
// directory dir: nil when there is none (never installed, or reset).
func InstalledCluster(dir string) (*cluster.Cluster, error) {
	p := filepath.Join(dir, ClusterRecord)
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return cluster.Load(p)
}
