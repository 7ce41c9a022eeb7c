package plugins

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestManagement: list shows each plugin's own version and the negotiated
// protocol version; uninstall removes binary and pin; a missing plugin
// directory is an error; verify results carry their error for JSON.
func TestManagement(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(EnvPath, dir)
	if _, err := Install(pluginPath("memory"), dir, "mem"); err != nil {
		t.Fatal(err)
	}
	if _, err := Install(pluginPath("hostile-v1"), dir, "old-v1"); err != nil {
		t.Fatal(err)
	}
	ds, err := ListDescribed(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Described{}
	for _, d := range ds {
		got[d.Name] = d
	}
	if d := got["mem"]; d.Version != "testplugin-1.2.3" || d.Protocol != ProtocolVersion || d.Error != "" {
		t.Errorf("mem: %+v, want version testplugin-1.2.3, protocol %d", d, ProtocolVersion)
	}
	if d := got["old-v1"]; d.Version != "" || d.Protocol != 1 || d.Error != "" {
		t.Errorf("a protocol-1 plugin: %+v, want no version and protocol 1", d)
	}

	// verify: a changed binary's error travels in JSON.
	f, err := os.OpenFile(filepath.Join(dir, exe(Prefix+"old-v1")), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0})
	f.Close()
	rs, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(rs)
	if !strings.Contains(string(js), `"status":"changed"`) || !strings.Contains(string(js), `"error":"plugin old-v1:`) {
		t.Errorf("verify JSON: %s", js)
	}

	p, err := Uninstall(dir, "old-v1")
	if err != nil || p.Name != "old-v1" {
		t.Fatalf("Uninstall = %+v, %v", p, err)
	}
	if _, err := os.Stat(p.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the binary is still there: %v", err)
	}
	m, err := readManifest(dir)
	if err != nil || m.Plugins["old-v1"].SHA256 != "" || m.Plugins["mem"].SHA256 == "" {
		t.Errorf("manifest after uninstall: %+v, %v", m, err)
	}
	if _, err := Uninstall("", "old-v1"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("uninstalling it again: %v, want fs.ErrNotExist", err)
	}
	if _, err := Uninstall("", "mem"); err != nil {
		t.Errorf("uninstall found by search: %v", err)
	}

	missing := filepath.Join(t.TempDir(), "nope")
	if _, err := List(missing); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("List of a missing directory = %v, want an error naming it", err)
	}
	t.Setenv(EnvPath, missing)
	if _, err := List(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("List with a missing directory on %s = %v, want an error", EnvPath, err)
	}
	if _, err := Verify(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Verify of a missing directory = %v, want an error", err)
	}
}

// TestNoSpuriousWarning: a missing binary, a file that is not executable
// and a program that is not a plugin fail Open with one error naming the
// plugin, and go-plugin's clean-up logs nothing before it.
func TestNoSpuriousWarning(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), Prefix+"text")
	os.WriteFile(notExec, []byte("hello"), 0o644)
	notPlugin := filepath.Join(t.TempDir(), Prefix+"script")
	os.WriteFile(notPlugin, []byte("#!/bin/sh\necho hello\n"), 0o755)
	for _, c := range []struct {
		path string
		want error
	}{
		{filepath.Join(t.TempDir(), Prefix+"missing"), fs.ErrNotExist},
		{notExec, ErrNotPlugin},
		{notPlugin, ErrNotPlugin},
	} {
		var logs bytes.Buffer
		l := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
		_, err := Open(c.path, nil, WithLogger(l))
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), "plugin "+NameOf(c.path)) {
			t.Errorf("Open(%s) = %v, want an error wrapping %v naming the plugin", c.path, err, c.want)
		}
		if logs.Len() > 0 {
			t.Errorf("Open(%s) logged before its error:\n%s", c.path, logs.String())
		}
	}
}
