package main

import (
	"fmt"
	"io"
	"time"
)

// progress reports how far a long command has come, on standard error. It
// writes only when standard error is a terminal (one line, rewritten in
// place) or when the command's --progress forces it (then plain lines, at
// most one a second, for logs). A nil *progress does nothing.
type progress struct {
	w     io.Writer
	label string
	tty   bool
	last  time.Time
	shown bool
}

// newProgress returns the progress reporter for a command, or nil when
// progress is not to be shown.
func newProgress(e *env, label string, force bool) *progress {
	if !e.stderrTTY && !force {
		return nil
	}
	return &progress{w: e.stderr, label: label, tty: e.stderrTTY}
}

func (p *progress) show(final bool, format string, a ...any) {
	if p == nil {
		return
	}
	every := time.Second
	if p.tty {
		every = 100 * time.Millisecond
	}
	if !final && time.Since(p.last) < every {
		return
	}
	p.last = time.Now()
	p.shown = true
	msg := p.label + ": " + fmt.Sprintf(format, a...)
	if p.tty {
		fmt.Fprintf(p.w, "\r\x1b[K%s", msg)
	} else {
		fmt.Fprintln(p.w, msg)
	}
}

// shards reports a cache directory walk: done of its 256 shard directories.
// It has the signature internal/fsstore takes; on a nil *progress it is a
// nil func, which fsstore skips.
func (p *progress) shards(done int) {
	p.show(done == 256, "%3d%% (%d/256 directories)", done*100/256, done)
}

// count reports a listing of unknown length.
func (p *progress) count(n int) { p.show(false, "%d entries", n) }

// step reports work of known length.
func (p *progress) step(done, total int) {
	p.show(done == total, "%d/%d", done, total)
}

// done ends the progress line on a terminal.
func (p *progress) done() {
	if p != nil && p.tty && p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}
