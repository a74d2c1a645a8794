package install

import (
	"fmt"
	"testing"
	"time"

	"github.com/sealpack/sealpack/internal/testbed"
)

// BenchmarkDetachedScript measures what running a step script detached
// (runDetached: recorded pid, log, exit status) costs over running it
// attached to its SSH session (runScript), on one host of the namespaced
// bed. Each iteration runs the same short script both ways, one after the
// other, so both see the same load: on a shared machine the ratio and the
// difference mean more than either time.
func BenchmarkDetachedScript(b *testing.B) {
	bed := testbed.New(b, 1)
	e := bedEngine(b, bed)
	c, err := e.conn(b.Context(), e.c.Master0())
	if err != nil {
		b.Fatal(err)
	}
	const script = "echo one; echo two >&2; true"
	var attached, detached time.Duration
	i := 0
	for b.Loop() {
		i++
		t0 := time.Now()
		if err := e.runScript(b.Context(), c, "bench", "bench", "/", nil, script); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := e.runDetached(b.Context(), c, "bench", "bench", fmt.Sprintf("bench-%d", i), "/", nil, script); err != nil {
			b.Fatal(err)
		}
		attached += t1.Sub(t0)
		detached += time.Since(t1)
	}
	n := float64(i)
	b.ReportMetric(attached.Seconds()*1000/n, "attached-ms/op")
	b.ReportMetric(detached.Seconds()*1000/n, "detached-ms/op")
	b.ReportMetric((detached-attached).Seconds()*1000/n, "overhead-ms/op")
	b.ReportMetric(float64(detached)/float64(attached), "ratio")
}
