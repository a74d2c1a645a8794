package install

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestPlainSinkSummarisesBigPhases: a phase on many hosts prints its
// progress across them, not a line per host and step; failures always
// print; a small phase keeps its line per host.
func TestPlainSinkSummarisesBigPhases(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	run := func(hosts int) string {
		var b strings.Builder
		p := &PlainSink{W: &b}
		p.Event(Event{Time: t0, Kind: PhaseStart, Phase: "join-node", Hosts: HostCount{Total: hosts}})
		var c HostCount
		c.Total = hosts
		for i := range hosts {
			at := t0.Add(time.Duration(i) * time.Second)
			ip := fmt.Sprintf("10.0.0.%d", i+1)
			if i%10 == 3 {
				c.Failed++
				p.Event(Event{Time: at, Kind: StepFailed, Host: ip, Phase: "join-node", Step: "join-node", Err: errors.New("exit 1")})
			} else {
				c.Done++
				p.Event(Event{Time: at, Kind: StepDone, Host: ip, Phase: "join-node", Step: "join-node", Elapsed: time.Second})
			}
			p.Event(Event{Time: at, Kind: PhaseProgress, Phase: "join-node", Hosts: c})
		}
		p.Event(Event{Time: t0.Add(time.Minute), Kind: PhaseDone, Phase: "join-node", Hosts: c, Elapsed: time.Minute})
		return b.String()
	}
	for _, tc := range []struct {
		hosts               int
		want                []string
		maxLines, doneLines int
	}{
		{hosts: 40, want: []string{"[cluster] join-node on 40 hosts", "[cluster] join-node 5/40, 1 failed", "[cluster] join-node 36/40, 4 failed",
			"[10.0.0.34] join-node: FAILED: exit 1", "[cluster] join-node finished in 1m0s (36/40, 4 failed hosts)"}, maxLines: 20},
		{hosts: 3, want: []string{"[10.0.0.1] join-node: done in 1s", "finished in 1m0s (3/3 hosts)"}, doneLines: 3},
	} {
		out := run(tc.hosts)
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%d hosts: no %q in\n%s", tc.hosts, w, out)
			}
		}
		lines := strings.Count(out, "\n")
		if tc.maxLines > 0 && lines > tc.maxLines {
			t.Errorf("%d hosts: %d lines, want at most %d:\n%s", tc.hosts, lines, tc.maxLines, out)
		}
		if got := strings.Count(out, ": done in"); got != tc.doneLines {
			t.Errorf("%d hosts: %d per-host done lines, want %d:\n%s", tc.hosts, got, tc.doneLines, out)
		}
	}
}

func TestCheckMastersWarnsAboutEvenCounts(t *testing.T) {
	for _, tc := range []struct {
		masters int
		want    string
	}{
		{1, ""},
		{2, "2 masters: etcd keeps quorum only while more than half of them live, so losing either stops the cluster, as with 1 master; use 3 masters"},
		{3, ""},
		{4, "the cluster survives 1 master failure(s), as with 3 masters; use 5"},
		{5, ""},
	} {
		got := checkMasters(tc.masters)
		if tc.want == "" {
			if len(got) != 0 {
				t.Errorf("%d masters: %v, want no warning", tc.masters, got)
			}
			continue
		}
		if len(got) != 1 || got[0].Status != Warn || !strings.Contains(got[0].Reason, tc.want) {
			t.Errorf("%d masters: %+v, want a warning with %q", tc.masters, got, tc.want)
		}
	}
}
