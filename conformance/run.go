package conformance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
)

// check is one named check of the suite.
type check struct {
	name string
	// needs are the capabilities the check requires; without them it is
	// skipped with "backend lacks capability X".
	needs Features
	// keeping marks a check that only makes sense for a backend that keeps
	// entries; it is skipped for one declaring backends.Discarder.
	keeping bool
	// doc says in one sentence what the check demands.
	doc string
	// stress marks a check that Stress repeats (see env.repeat).
	stress bool
	// closeLater leaves the failures of the final Close of the instances
	// to the checks that test Close (the "open" probe).
	closeLater bool
	run        func(ctx context.Context, e *env) error
}

// CheckNames returns the names of every check in the suite, in the order
// they run, after the "open" check that always runs first.
func CheckNames() []string {
	names := make([]string, len(checks))
	for i, c := range checks {
		names[i] = c.name
	}
	return names
}

// CheckInfo describes one check of the suite.
type CheckInfo struct {
	// Name is the check's name, as in Result.Name.
	Name string
	// Needs are the capabilities without which the check is skipped.
	Needs Features
	// Description says in one sentence what the check demands.
	Description string
}

// Checks describes every check in the suite, in the order they run.
func Checks() []CheckInfo {
	out := make([]CheckInfo, len(checks))
	for i, c := range checks {
		out[i] = CheckInfo{Name: c.name, Needs: c.needs, Description: c.doc}
	}
	return out
}

// skipError is returned by a check that finds at run time that it does not
// apply.
type skipError struct{ reason string }

func (s *skipError) Error() string { return "skip: " + s.reason }

func skipf(format string, args ...any) error { return &skipError{fmt.Sprintf(format, args...)} }

// env is what one check gets: the harness, the options, the backend's
// declared capabilities and a fresh directory layout:
//
//	base/                os.MkdirTemp
//	base/d/w/store       dir, handed to Harness.Open
//	base/d/w/sibling     an empty directory that must stay empty
//	base/scratch         files the suite itself writes (file-streaming checks)
//
// Nothing else may appear under base: dir is three levels down so that a
// key such as "../../../x" that escapes it still lands where the suite looks.
type env struct {
	h    Harness
	cfg  *config
	caps Features

	base, dir, sibling, scratch string

	mu     sync.Mutex
	opened []backends.Backend

	// panicked receives the first panic of a goroutine the check started
	// (see goSafe); cancel ends the check's context.
	panicOnce sync.Once
	panicked  chan error
	cancel    context.CancelFunc
}

// goSafe runs f in a new goroutine. A panic in f (a backend method that
// panics in a goroutine of the check) is not allowed to crash the program:
// it fails the check with the panic's value and stack, and ends the check's
// context so that the check's other goroutines stop.
func (e *env) goSafe(f func()) {
	go func() {
		defer func() {
			if p := recover(); p != nil {
				e.panicOnce.Do(func() {
					e.panicked <- fmt.Errorf("panic in a goroutine of the check: %v\n%s", p, trimStack(debug.Stack()))
					if e.cancel != nil {
						e.cancel()
					}
				})
			}
		}()
		f()
	}()
}

func newEnv(h Harness, cfg *config, caps Features) (*env, error) {
	base, err := os.MkdirTemp("", "regioncache-conformance-")
	if err != nil {
		return nil, fmt.Errorf("conformance: creating the check's directory: %w", err)
	}
	e := &env{h: h, cfg: cfg, caps: caps, base: base, panicked: make(chan error, 1),
		dir:     filepath.Join(base, "d", "w", "store"),
		sibling: filepath.Join(base, "d", "w", "sibling"),
		scratch: filepath.Join(base, "scratch")}
	for _, d := range []string{e.dir, e.sibling, e.scratch} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			os.RemoveAll(base)
			return nil, fmt.Errorf("conformance: creating the check's directory: %w", err)
		}
	}
	return e, nil
}

func (e *env) discards() bool { return e.caps&FeatDiscards != 0 }

func (e *env) has(c Features) bool { return e.caps&c == c }

func (e *env) track(b backends.Backend) {
	e.mu.Lock()
	e.opened = append(e.opened, b)
	e.mu.Unlock()
}

// open opens a fresh instance on the check's directory. The suite closes it
// when the check ends.
func (e *env) open(ctx context.Context) (backends.Backend, error) {
	return e.openOn(ctx, e.dir)
}

func (e *env) openOn(ctx context.Context, dir string) (backends.Backend, error) {
	b, err := e.h.Open(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("opening an instance: %w", err)
	}
	if b == nil {
		return nil, errors.New("opening an instance: Open returned a nil backend and no error")
	}
	e.track(b)
	return b, nil
}

// closeAll closes every instance the check opened (again, for those it
// closed itself: Close is idempotent). A Close that panics, returns an error
// or does not return within the patience is reported; it never crashes or
// stops the suite.
func (e *env) closeAll() error {
	e.mu.Lock()
	opened := e.opened
	e.opened = nil
	e.mu.Unlock()
	var errs []error
	for i, b := range opened {
		done := make(chan error, 1)
		go func() {
			defer func() {
				if p := recover(); p != nil {
					done <- fmt.Errorf("Close of instance %d panicked: %v\n%s", i+1, p, trimStack(debug.Stack()))
				}
			}()
			if err := b.Close(); err != nil {
				done <- fmt.Errorf("Close of instance %d returned %q, want nil (Close is idempotent, also after the check closed it)", i+1, err)
				return
			}
			done <- nil
		}()
		t := time.NewTimer(e.cfg.patience)
		select {
		case err := <-done:
			errs = append(errs, err)
		case <-t.C:
			errs = append(errs, fmt.Errorf("Close of instance %d did not return within %v (abandoned; Close must not block)", i+1, e.cfg.patience))
		}
		t.Stop()
	}
	return errors.Join(errs...)
}

// repeat runs round once, or, under Stress, again and again (round 0, 1,
// ...) until the stress duration has passed. It stops at the first error.
func (e *env) repeat(ctx context.Context, round func(n int) error) error {
	end := time.Now().Add(e.cfg.stress)
	for n := 0; ; n++ {
		if err := round(n); err != nil {
			if n > 0 {
				return fmt.Errorf("round %d of the stress run: %w", n+1, err)
			}
			return err
		}
		if !time.Now().Before(end) || ctx.Err() != nil {
			return nil
		}
	}
}

// cleanup closes the instances and removes the check's directories.
func (e *env) cleanup() error {
	err := e.closeAll()
	_ = os.RemoveAll(e.base)
	return err
}

// Check runs the suite against the backend h opens and returns one Result
// per check. It does not need a *testing.T: the regioncache CLI uses it to
// check plugin executables. ctx bounds the whole run: checks not started
// when it ends are skipped.
func Check(ctx context.Context, h Harness, opts ...Option) Report {
	cfg := defaultConfig()
	for _, o := range opts {
		o(cfg)
	}
	name := h.Name
	if name == "" {
		name = "backend"
	}
	rep := Report{Name: name}
	if h.Open == nil {
		rep.Results = append(rep.Results, Result{Name: "open", Status: Fail, Reason: "Harness.Open is nil"})
		return rep
	}
	caps, openRes := probe(ctx, h, cfg)
	rep.Capabilities = caps
	rep.Results = append(rep.Results, openRes)
	for _, c := range checks {
		if !cfg.selected(c.name) {
			continue
		}
		var res Result
		switch {
		case openRes.Status != Pass:
			res = Result{Name: c.name, Status: Skip, Reason: "the backend could not be opened"}
		case ctx.Err() != nil:
			res = Result{Name: c.name, Status: Skip, Reason: "run cancelled: " + ctx.Err().Error()}
		default:
			res = runCheck(ctx, h, cfg, caps, c)
		}
		rep.Results = append(rep.Results, res)
	}
	return rep
}

// probe opens one instance to learn the backend's capabilities. It is the
// "open" check.
func probe(ctx context.Context, h Harness, cfg *config) (Features, Result) {
	var caps Features
	res := runCheck(ctx, h, cfg, 0, check{name: "open", closeLater: true, run: func(ctx context.Context, e *env) error {
		b, err := e.open(ctx)
		if err != nil {
			return err
		}
		caps = featuresOf(ctx, b)
		return nil // closed by the suite; close/... checks judge Close
	}})
	return caps, res
}

// runCheck runs one check in its own goroutine under the check timeout.
func runCheck(ctx context.Context, h Harness, cfg *config, caps Features, c check) Result {
	res := Result{Name: c.name}
	if missing := c.needs &^ caps; missing != 0 {
		res.Status = Skip
		res.Reason = "backend lacks capability " + missing.String()
		return res
	}
	if c.keeping && caps&FeatDiscards != 0 {
		res.Status = Skip
		res.Reason = "backend declares capability discards: it keeps no entries"
		return res
	}
	start := time.Now()
	e, err := newEnv(h, cfg, caps)
	if err != nil {
		res.Status, res.Reason = Fail, err.Error()
		return res
	}
	timeout := cfg.timeout
	if c.stress {
		timeout += cfg.stress
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	e.cancel = cancel
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("panic: %v\n%s", p, trimStack(debug.Stack()))
			}
		}()
		done <- c.run(cctx, e)
	}()
	abandoned := false
	select {
	case err = <-done:
	case perr := <-e.panicked:
		// A goroutine of the check panicked: that is the failure, whatever
		// the check goes on to do once its context has ended.
		grace := time.NewTimer(cfg.patience)
		select {
		case <-done:
		case <-grace.C:
		}
		grace.Stop()
		err = perr
	case <-cctx.Done():
		// Give a check that honours its context a moment to return.
		grace := time.NewTimer(cfg.patience)
		select {
		case err = <-done:
		case <-grace.C:
			abandoned = true
		}
		grace.Stop()
		why := "timed out"
		if ctx.Err() != nil {
			why = "run cancelled"
		}
		switch {
		case abandoned:
			err = fmt.Errorf("%s after %v and did not return %v after its context ended (abandoned; the backend is probably blocked)", why, timeout, cfg.patience)
		case err == nil:
			// It finished its work just as its time ran out: a pass.
		default:
			err = fmt.Errorf("%s after %v: %w", why, timeout, err)
		}
	}
	if err == nil {
		select {
		case perr := <-e.panicked:
			err = perr
		default:
		}
	}
	if err == nil {
		// Whatever a check does, the backend must write only inside dir,
		// also when it is closed.
		if cerr := e.closeAll(); cerr != nil && !c.closeLater {
			err = fmt.Errorf("the check's operations succeeded, but closing the instances it opened failed: %w", cerr)
		} else if serr := e.noStrays(); serr != nil {
			err = fmt.Errorf("the check's operations succeeded, but %w", serr)
		}
	}
	if cerr := e.cleanup(); cerr != nil && err != nil && !c.closeLater {
		var sk *skipError
		if !errors.As(err, &sk) {
			err = fmt.Errorf("%w; and in cleanup: %v", err, cerr)
		}
	}
	res.Duration = time.Since(start)
	var sk *skipError
	switch {
	case err == nil:
		res.Status = Pass
	case errors.As(err, &sk):
		res.Status, res.Reason = Skip, sk.reason
	default:
		res.Status, res.Reason = Fail, err.Error()
	}
	return res
}

func trimStack(s []byte) string {
	lines := strings.Split(string(s), "\n")
	if len(lines) > 30 {
		lines = append(lines[:30], "...")
	}
	return strings.Join(lines, "\n")
}

// Run runs the suite against the backend h opens, each check as a subtest
// of t named after it (t.Run("roundtrip/large", ...)). A failed check fails
// its subtest with the reason; a check that does not apply is skipped with
// the reason (t.Skip), for example "backend lacks capability lock".
//
// Run with -run to select checks, e.g. go test -run 'TestConformance/lock/'.
func Run(t *testing.T, h Harness, opts ...Option) {
	t.Helper()
	cfg := defaultConfig()
	for _, o := range opts {
		o(cfg)
	}
	if h.Open == nil {
		t.Fatal("conformance: Harness.Open is nil")
	}
	var caps Features
	var openRes Result
	if !t.Run("open", func(t *testing.T) {
		caps, openRes = probe(t.Context(), h, cfg)
		report(t, openRes)
	}) {
		t.Fatalf("conformance: cannot open %s: %s", h.Name, openRes.Reason)
	}
	t.Logf("conformance: %s declares capabilities %s", h.Name, caps)
	for _, c := range checks {
		if !cfg.selected(c.name) {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			report(t, runCheck(t.Context(), h, cfg, caps, c))
		})
	}
}

func report(t *testing.T, res Result) {
	t.Helper()
	switch res.Status {
	case Skip:
		t.Skip(res.Reason)
	case Fail:
		t.Fatal(res.Reason)
	}
}
