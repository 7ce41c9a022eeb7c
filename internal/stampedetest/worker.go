// Package stampedetest is the one harness for regioncache's tests that run
// work in several processes at once: a test re-executes its own binary as
// worker processes, releases them together, and collects one result from
// each.
//
// Two layers:
//
//   - Workers of any kind. A using package's TestMain calls [Main] with the
//     kinds of worker it defines (a [WorkerFunc] each, usually made by
//     [Kind]); a test starts them with [Launch], [LaunchAll] or [RunAll]. A
//     worker says "ready" ([Ready]) and waits until the parent releases it
//     (closes its stdin); the parent reads its result, one JSON value.
//   - The stampede, a built-in kind: each worker opens a region on the
//     backend and arguments the test names ([Spec]) and runs GetOrCreate on
//     one key from many goroutines; [Run], [Cold] and [Expired] start the
//     workers and check and summarise what they returned ([Outcome],
//     [Served], [Distribution], [Within]).
//
// The package imports no backend: a worker opens the backend by name, so the
// using test binary registers the backends it stampedes by its own imports.
// The cross-process stampede measurements of DESIGN §9 (8 processes × 32
// goroutines, exactly one creation) are this package's own tests, and the
// Redis, memcached and filesystem backends' tests run the same stampede.
package stampedetest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// KindEnv is the environment variable that makes the test binary a worker:
// it holds the worker's kind. SpecEnv holds the parent's spec, as JSON.
const (
	KindEnv = "REGIONCACHE_TEST_WORKER"
	SpecEnv = "REGIONCACHE_TEST_WORKER_SPEC"
)

// A WorkerFunc is the body of one kind of worker. spec decodes the spec the
// parent gave [Launch] into a pointer. It returns the worker's result (any
// value that encodes as JSON; the parent decodes it with [Worker.Result]), or
// an error, which fails the parent's test. A worker that waits for the other
// workers calls [Ready] once it is set up; one that is killed rather than
// released may instead [Say] "ready" and never return.
type WorkerFunc func(spec func(v any) error) (result any, err error)

// Kind makes a [WorkerFunc] of a function of the decoded spec: f gets the
// value of type S the parent gave [Launch].
func Kind[S any](f func(spec S) (any, error)) WorkerFunc {
	return func(decode func(any) error) (any, error) {
		var spec S
		if err := decode(&spec); err != nil {
			return nil, fmt.Errorf("stampedetest: decoding the spec: %w", err)
		}
		return f(spec)
	}
}

// envelope is the last thing a worker writes: its result or its error.
type envelope struct {
	Result json.RawMessage `json:",omitempty"`
	Error  string          `json:",omitempty"`
}

// Main is a TestMain for packages whose tests start workers. In a process
// started by [Launch] it runs the worker of the kind named there (from kinds,
// or [StampedeKind]), writes its result, and exits with status 0; otherwise it
// runs the tests and exits with their status. It does not return.
func Main(m *testing.M, kinds map[string]WorkerFunc) {
	kind := os.Getenv(KindEnv)
	if kind == "" {
		os.Exit(m.Run())
	}
	f := kinds[kind]
	if kind == StampedeKind {
		f = Kind(stampedeWorker)
	}
	var env envelope
	if f == nil {
		env.Error = fmt.Sprintf("stampedetest: no worker of kind %q in this test binary", kind)
	} else {
		res, err := f(func(v any) error { return json.Unmarshal([]byte(os.Getenv(SpecEnv)), v) })
		if err == nil {
			env.Result, err = json.Marshal(res)
		}
		if err != nil {
			env.Error = err.Error()
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(env); err != nil {
		fmt.Fprintln(os.Stderr, "stampedetest: writing the result:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Say writes one line to the parent, which reads it with [Worker.Expect].
// Only a worker may call it.
func Say(line string) { fmt.Println(line) }

// Ready says "ready" to the parent and blocks until the parent releases the
// worker ([Worker.Release]; it closes the worker's stdin). Workers released
// together start their work within moments of each other.
func Ready() {
	Say("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// Worker is the parent's handle on one worker process.
type Worker struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// Launch starts a worker of kind: this test binary again, running no test,
// with spec encoded as JSON. Its stderr goes to this process's stderr. The
// worker is killed, if it still runs, when t's test ends. Launch fails t if
// the process cannot be started.
func Launch(t testing.TB, kind string, spec any) *Worker {
	t.Helper()
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatalf("stampedetest: spec of a %s worker: %v", kind, err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), KindEnv+"="+kind, SpecEnv+"="+string(js))
	cmd.Stderr = os.Stderr
	var out io.ReadCloser
	in, err := cmd.StdinPipe()
	if err == nil {
		out, err = cmd.StdoutPipe()
	}
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		t.Fatalf("stampedetest: starting a %s worker: %v", kind, err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return &Worker{cmd: cmd, stdin: in, out: bufio.NewReader(out)}
}

// Expect reads the worker's next line ([Say], [Ready]) and fails t unless it
// is line.
func (w *Worker) Expect(t testing.TB, line string) {
	t.Helper()
	got, err := w.out.ReadString('\n')
	if err != nil || strings.TrimSpace(got) != line {
		t.Fatalf("stampedetest: worker %d said %q (%v), want %q", w.cmd.Process.Pid, got, err, line)
	}
}

// Release lets a worker blocked in [Ready] go on.
func (w *Worker) Release() { _ = w.stdin.Close() }

// Result reads the worker's result into the value v points to and waits for
// the worker to exit. It fails t if the worker reported an error, wrote
// something else, or exited with an error.
func (w *Worker) Result(t testing.TB, v any) {
	t.Helper()
	var env envelope
	if err := json.NewDecoder(w.out).Decode(&env); err != nil {
		_ = w.cmd.Process.Kill()
		_ = w.cmd.Wait()
		t.Fatalf("stampedetest: worker %d: reading its result: %v", w.cmd.Process.Pid, err)
	}
	if err := w.cmd.Wait(); err != nil {
		t.Fatalf("stampedetest: worker %d: %v", w.cmd.Process.Pid, err)
	}
	if env.Error != "" {
		t.Fatalf("stampedetest: worker %d: %s", w.cmd.Process.Pid, env.Error)
	}
	if err := json.Unmarshal(env.Result, v); err != nil {
		t.Fatalf("stampedetest: worker %d: decoding its result: %v", w.cmd.Process.Pid, err)
	}
}

// Kill kills the worker (SIGKILL, as a crash would) and waits for it to exit.
func (w *Worker) Kill() {
	_ = w.cmd.Process.Kill()
	_ = w.cmd.Wait()
}

// LaunchAll launches n workers of kind, the i-th with spec(i), and waits
// until each has said "ready" ([Ready]).
func LaunchAll(t testing.TB, n int, kind string, spec func(i int) any) []*Worker {
	t.Helper()
	ws := make([]*Worker, n)
	for i := range ws {
		ws[i] = Launch(t, kind, spec(i))
	}
	for _, w := range ws {
		w.Expect(t, "ready")
	}
	return ws
}

// ReleaseAll releases workers together: their [Ready] calls return within
// moments of each other.
func ReleaseAll(ws []*Worker) {
	for _, w := range ws {
		w.Release()
	}
}

// Results reads each worker's result ([Worker.Result]), in order.
func Results[R any](t testing.TB, ws []*Worker) []R {
	t.Helper()
	res := make([]R, len(ws))
	for i, w := range ws {
		w.Result(t, &res[i])
	}
	return res
}

// RunAll launches n workers of kind (the i-th with spec(i)), releases them
// together once all are ready, and returns their results in order. It fails
// t as [LaunchAll] and [Worker.Result] do.
func RunAll[R any](t testing.TB, n int, kind string, spec func(i int) any) []R {
	t.Helper()
	ws := LaunchAll(t, n, kind, spec)
	ReleaseAll(ws)
	return Results[R](t, ws)
}
