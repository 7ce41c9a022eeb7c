package contentkey_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/memory"
	_ "github.com/regioncache/regioncache/backends/rawfs"
	"github.com/regioncache/regioncache/region"
	"github.com/regioncache/regioncache/region/contentkey"
)

type Point struct {
	X, Y  int
	Label string
	Attrs map[string]int
}

// sampleValues are hashed by worker processes and by the test itself.
func sampleValues() []any {
	m := map[string]int{}
	for i := range 50 {
		m[fmt.Sprintf("k%02d", i)] = i
	}
	return []any{
		[]byte("raw bytes"),
		"a string",
		m,
		Point{1, 2, "p", m},
		[]float64{1.5, 2.5},
	}
}

func keysOf(t testing.TB) []string {
	var keys []string
	for _, v := range sampleValues() {
		var k string
		var err error
		switch x := v.(type) {
		case []byte:
			k, err = contentkey.Of(x)
		case string:
			k, err = contentkey.Of(x)
		case map[string]int:
			k, err = contentkey.Of(x)
		case Point:
			k, err = contentkey.Of(x)
		case []float64:
			k, err = contentkey.Of(x)
		}
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return keys
}

// TestMain lets the test binary act as a worker: with
// REGIONCACHE_CONTENTKEY_HELPER set it prints the keys of sampleValues, one
// a line, after storing the map under its key with Put in the rawfs region
// at CK_DIR; then it prints whether it could read back what the previous
// worker put.
func TestMain(m *testing.M) {
	if os.Getenv("REGIONCACHE_CONTENTKEY_HELPER") == "" {
		os.Exit(m.Run())
	}
	r, err := region.Open("rawfs", backends.Args{"base_dir": os.Getenv("CK_DIR")})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	defer r.Close()
	for _, k := range keysOf(failer{}) {
		fmt.Println(k)
	}
	p := sampleValues()[3].(Point)
	k, err := contentkey.Put(context.Background(), r, p)
	if err != nil {
		fmt.Println("put:", err)
		os.Exit(1)
	}
	got, err := region.Get[Point](context.Background(), r, k)
	fmt.Println("get", err == nil && got.Label == "p" && len(got.Attrs) == 50)
	fmt.Println("creations", r.Stats().Creations)
	os.Exit(0)
}

// failer is a testing.TB stand-in for the worker: it exits on Fatal.
type failer struct{ testing.TB }

func (failer) Fatal(args ...any) { fmt.Println(args...); os.Exit(1) }

func TestKeysStableAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	want := keysOf(t)
	for i, k := range want {
		if !strings.HasPrefix(k, "sha256:") || len(k) != len("sha256:")+64 {
			t.Fatalf("key %d %q is not sha256:<64 hex>", i, k)
		}
	}
	for proc := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "REGIONCACHE_CONTENTKEY_HELPER=1", "CK_DIR="+dir)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("worker %d: %v\n%s", proc, err, out)
		}
		var lines []string
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		if len(lines) != len(want)+2 {
			t.Fatalf("worker %d printed %q", proc, lines)
		}
		for i, k := range want {
			if lines[i] != k {
				t.Fatalf("worker %d: key of value %d is %s, this process computed %s", proc, i, lines[i], k)
			}
		}
		if lines[len(want)] != "get true" {
			t.Fatalf("worker %d could not read the value back: %s", proc, lines[len(want)])
		}
		// The first worker stores the value; the others find it cached.
		wantCreations := "creations 1"
		if proc > 0 {
			wantCreations = "creations 0"
		}
		if lines[len(want)+1] != wantCreations {
			t.Fatalf("worker %d: %s, want %s", proc, lines[len(want)+1], wantCreations)
		}
	}
}

func TestKnownKeys(t *testing.T) {
	// sha256("abc"), as sha256sum prints it.
	const abc = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if k := contentkey.Bytes([]byte("abc")); k != abc {
		t.Fatalf("Bytes(abc) = %s", k)
	}
	if k, _ := contentkey.Of("abc"); k != abc {
		t.Fatalf("Of(string abc) = %s", k)
	}
	if k, _ := contentkey.Reader(strings.NewReader("abc")); k != abc {
		t.Fatalf("Reader(abc) = %s", k)
	}
	i, _ := contentkey.Of(5)
	f, _ := contentkey.Of(5.0)
	if i == f {
		t.Fatalf("int 5 and float64 5 share key %s", i)
	}
	// Maps hash the same however often they are built and iterated.
	first, _ := contentkey.Of(sampleValues()[2].(map[string]int))
	for range 20 {
		if k, _ := contentkey.Of(sampleValues()[2].(map[string]int)); k != first {
			t.Fatalf("a map's key changed: %s, then %s", first, k)
		}
	}
	if _, err := contentkey.Of(func() {}); err == nil {
		t.Fatal("a func value was given a key")
	}
	if _, err := contentkey.Of(1, contentkey.KeyCodec(nil)); err == nil {
		t.Fatal("nil KeyCodec accepted")
	}
}

func TestPutWritesOnce(t *testing.T) {
	ctx := context.Background()
	r, err := region.Open("memory", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var keys []string
	for range 3 {
		k, err := contentkey.Put(ctx, r, Point{X: 1, Label: "a"})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if keys[0] != keys[1] || keys[1] != keys[2] {
		t.Fatalf("keys differ: %q", keys)
	}
	if c := r.Stats().Creations; c != 1 {
		t.Fatalf("3 Puts of one value made %d writes, want 1", c)
	}
	got, err := region.Get[Point](ctx, r, keys[0])
	if err != nil || got.Label != "a" {
		t.Fatalf("Get: %+v, %v", got, err)
	}
	k2, _ := contentkey.Put(ctx, r, Point{X: 2, Label: "a"})
	if k2 == keys[0] {
		t.Fatal("different values share a key")
	}
	if _, err := contentkey.Put(ctx, nil, 1); err == nil {
		t.Fatal("nil region accepted")
	}
}

func TestPutFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r, err := region.Open("rawfs", backends.Args{"base_dir": dir})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data := strings.Repeat("file content ", 10000)
	sum := sha256.Sum256([]byte(data))
	for range 2 {
		k, err := contentkey.PutFile(ctx, r, strings.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if k != "sha256:"+hex.EncodeToString(sum[:]) {
			t.Fatalf("key %s, want the sha256sum of the content", k)
		}
		f, err := region.GetOrCreateFile(ctx, r, k, func(context.Context) (*os.File, error) {
			return nil, errors.New("not cached")
		})
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		f.Close()
		if st.Size() != int64(len(data)) {
			t.Fatalf("stored %d bytes", st.Size())
		}
	}
	if c := r.Stats().Creations; c != 1 {
		t.Fatalf("2 PutFiles of one content stored it %d times, want 1", c)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "tmp", "*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := contentkey.PutFile(ctx2, r, strings.NewReader("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled PutFile: %v", err)
	}
	m, _ := region.Open("memory", nil)
	defer m.Close()
	if _, err := contentkey.PutFile(ctx, m, strings.NewReader("x")); !errors.Is(err, backends.ErrUnsupported) {
		t.Fatalf("PutFile on memory: %v, want ErrUnsupported", err)
	}
}

func ExampleBytes() {
	fmt.Println(contentkey.Bytes([]byte("abc")))
	// Output: sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
}
