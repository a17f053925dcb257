package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/tools/internal/procs"

	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage/statuspagefake"
)

// The status page fake of a -statuspage run runs in a process of its own at the lowest
// CPU priority: a real status page does not share the bridge's cores, and the fake checks
// every request and response against the OpenAPI spec, which costs more CPU than the
// bridge's work for it. Its URL and its counts go through files in the run's directory.

// runStatuspageFake is the -statuspage-fake mode: serve until SIGTERM, writing the URL to
// dir/statuspage.url and "<writes> <violations>" to dir/statuspage.stats every 100 ms.
func runStatuspageFake(dir string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	fake, err := statuspagefake.Start(statuspagefake.Options{})
	if err != nil {
		return err
	}
	defer fake.Close()
	if err := os.WriteFile(filepath.Join(dir, "statuspage.url.tmp"), []byte(fake.URL()), 0o600); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(dir, "statuspage.url.tmp"), filepath.Join(dir, "statuspage.url")); err != nil {
		return err
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		writes := 0
		for _, inc := range fake.Incidents() {
			writes += 1 + len(inc.Updates)
		}
		stats := fmt.Sprintf("%d %d", writes, len(fake.Violations()))
		_ = os.WriteFile(filepath.Join(dir, "statuspage.stats.tmp"), []byte(stats), 0o600)
		_ = os.Rename(filepath.Join(dir, "statuspage.stats.tmp"), filepath.Join(dir, "statuspage.stats"))
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

type statuspageProc struct {
	proc *procs.Proc
	url  string
	dir  string
}

// startStatuspageFake re-executes this program in -statuspage-fake mode at nice 19.
func startStatuspageFake(ctx context.Context, dir string) (*statuspageProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p, err := procs.Start("statuspage-fake", filepath.Join(dir, "statuspage.log"), nil, self, "-statuspage-fake", dir)
	if err != nil {
		return nil, err
	}
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, p.Pid(), 19)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "statuspage.url")); err == nil {
			return &statuspageProc{proc: p, url: strings.TrimSpace(string(b)), dir: dir}, nil
		}
		if time.Now().After(deadline) {
			p.Stop(5 * time.Second)
			return nil, fmt.Errorf("status page fake not ready after 30s:\n%s", p.Tail(15))
		}
		select {
		case <-p.Exited:
			return nil, fmt.Errorf("status page fake exited:\n%s", p.Tail(15))
		case <-ctx.Done():
			p.Stop(5 * time.Second)
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stats are the incidents and updates written so far and the spec violations seen.
func (s *statuspageProc) stats() (writes, violations int) {
	b, _ := os.ReadFile(filepath.Join(s.dir, "statuspage.stats"))
	fmt.Sscan(string(b), &writes, &violations)
	return writes, violations
}
