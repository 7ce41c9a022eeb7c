package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"testing"
)

func TestDemoCreatesOnce(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), &env{stdout: &out, stderr: &errb}, []string{"demo", "-callers", "50", "-work", "20ms"})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	get := func(name string) int {
		m := regexp.MustCompile(`(?m)^` + name + `: (\d+)$`).FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("no %q line in:\n%s", name, out.String())
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	if c := get("callers"); c < 50 {
		t.Fatalf("callers = %d\n%s", c, out.String())
	}
	if c := get("creations"); c != 1 {
		t.Fatalf("creations = %d, want 1\n%s", c, out.String())
	}
}

func TestUnknownCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), &env{stdout: &out, stderr: &errb}, []string{"frobnicate"}); code != 2 {
		t.Fatalf("exit %d", code)
	}
	if !bytes.Contains(errb.Bytes(), []byte("demo")) {
		t.Fatalf("usage does not list commands: %s", errb.String())
	}
}

func TestDemoBadFlag(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), &env{stdout: &out, stderr: &errb}, []string{"demo", "-callers", "0"}); code != 2 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}
