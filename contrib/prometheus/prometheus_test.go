package prometheus_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/memory"
	rcprom "github.com/regioncache/regioncache/contrib/prometheus"
	"github.com/regioncache/regioncache/region"
)

// scrape fetches /metrics over HTTP and returns the value of each sample,
// keyed by its name and labels as written ("regioncache_calls_total{region=\"users\"}").
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	out := map[string]float64{}
	for _, m := range regexp.MustCompile(`(?m)^(\w+(?:\{[^}]*\})?) (\S+)$`).FindAllStringSubmatch(string(body), -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", m[0], err)
		}
		out[m[1]] = v
	}
	return out
}

// A 50-caller stampede on one cold key, then /metrics scraped over HTTP:
// calls=50, creations=1, lock waits=49, and the histograms saw one creation
// of about the creator's time and 49 waits.
func TestStampedeMetricsOverHTTP(t *testing.T) {
	reg := prom.NewRegistry()
	m := rcprom.New()
	reg.MustRegister(m)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	r, err := region.Open("memory", backends.Args{}, region.WithName("users"), region.WithObserver(m.Observe))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const callers = 50
	const work = 200 * time.Millisecond
	var created atomic.Int64
	var ready, wg sync.WaitGroup
	start := make(chan struct{})
	ready.Add(callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			<-start
			v, err := region.GetOrCreate(context.Background(), r, "report", func(ctx context.Context) (string, error) {
				created.Add(1)
				time.Sleep(work)
				return "value", nil
			})
			if err != nil || v != "value" {
				t.Errorf("GetOrCreate = %q, %v", v, err)
			}
		}()
	}
	ready.Wait()
	close(start)
	wg.Wait()

	got := scrape(t, srv.URL+"/metrics")
	l := `{region="users"}`
	want := map[string]float64{
		"regioncache_calls_total" + l:             callers,
		"regioncache_creations_total" + l:         1,
		"regioncache_lock_waits_total" + l:        callers - 1,
		"regioncache_misses_total" + l:            callers,
		"regioncache_hits_total" + l:              0,
		"regioncache_errors_total" + l:            0,
		"regioncache_creation_seconds_count" + l:  1,
		"regioncache_lock_wait_seconds_count" + l: callers - 1,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
	if s := got["regioncache_creation_seconds_sum"+l]; s < work.Seconds() || s > 10*work.Seconds() {
		t.Errorf("creation_seconds_sum = %v, want about %v", s, work.Seconds())
	}
	// The exported counters agree with the region's own.
	st := r.Stats()
	if float64(st.Calls) != got["regioncache_calls_total"+l] || float64(st.LockWaits) != got["regioncache_lock_waits_total"+l] || created.Load() != 1 {
		t.Errorf("region.Stats %+v, creator ran %d times; scraped %v", st, created.Load(), got)
	}

	// Hits and stale values served are counted too.
	for range 3 {
		if _, err := region.Get[string](context.Background(), r, "report"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := region.GetOrCreate(context.Background(), r, "report", func(ctx context.Context) (string, error) { return "", nil }); err != nil {
		t.Fatal(err)
	}
	got = scrape(t, srv.URL+"/metrics")
	if got["regioncache_hits_total"+l] < 1 || got["regioncache_calls_total"+l] < callers+1 {
		t.Errorf("after hits: %v", got)
	}
}

// Two regions are two label values of the same metrics.
func TestRegionsAreLabels(t *testing.T) {
	reg := prom.NewRegistry()
	m := rcprom.New(rcprom.Namespace("app"))
	reg.MustRegister(m)
	for _, name := range []string{"a", "b"} {
		r, err := region.Open("memory", backends.Args{}, region.WithName(name), region.WithObserver(m.Observe))
		if err != nil {
			t.Fatal(err)
		}
		region.GetOrCreate(context.Background(), r, "k", func(ctx context.Context) (int, error) { return 1, nil })
		r.Close()
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	got := scrape(t, srv.URL)
	if got[`app_creations_total{region="a"}`] != 1 || got[`app_creations_total{region="b"}`] != 1 {
		t.Fatalf("per-region creations: %v", got)
	}
}
