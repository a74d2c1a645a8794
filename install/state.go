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

func loadState(path string) (*localState, error) {
	st := &localState{path: path, Hosts: map[string]map[string]string{}}
	if path == "" {
		return st, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read install state: %w", err)
	}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("read install state %s: %w", path, err)
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
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("save install state: %w", err)
	}
	return os.Rename(tmp, s.path)
}
