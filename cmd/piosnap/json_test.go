package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/piosnap/piosnap/config"
)

// shape is a JSON shape as README.md documents it: `{a, b: {c}, d: [{e}]}`.
// An object lists its keys (nil: a value of any kind); an array has one
// element shape.
type shape struct {
	keys  []string
	sub   map[string]*shape
	elem  *shape
	array bool
}

// parseShape parses README's notation: keys, optionally quoted, each
// optionally followed by ": " and an object, an array or quoted literals
// ("a"|"b", which any value satisfies).
func parseShape(t *testing.T, src string) *shape {
	t.Helper()
	p := &shapeParser{s: src}
	sh := p.value()
	if p.err != "" || strings.TrimSpace(p.s[p.i:]) != "" {
		t.Fatalf("README shape %q: %s at %q", src, p.err, p.s[p.i:])
	}
	return sh
}

type shapeParser struct {
	s   string
	i   int
	err string
}

func (p *shapeParser) skip() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *shapeParser) eat(c byte) bool {
	p.skip()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *shapeParser) value() *shape {
	switch {
	case p.eat('{'):
		sh := &shape{sub: map[string]*shape{}}
		for p.err == "" {
			name := p.name()
			sh.keys = append(sh.keys, name)
			if p.eat(':') {
				sh.sub[name] = p.value()
			}
			if p.eat('}') {
				return sh
			}
			if !p.eat(',') {
				p.err = "want , or }"
			}
		}
		return sh
	case p.eat('['):
		sh := &shape{array: true, elem: p.value()}
		if !p.eat(']') {
			p.err = "want ]"
		}
		return sh
	}
	for { // literals such as "success"|"partial"
		p.name()
		if !p.eat('|') {
			return nil
		}
	}
}

func (p *shapeParser) name() string {
	p.skip()
	quoted := p.eat('"')
	start := p.i
	for p.i < len(p.s) && (p.s[p.i] == '_' || p.s[p.i] >= 'a' && p.s[p.i] <= 'z') {
		p.i++
	}
	name := p.s[start:p.i]
	if name == "" || quoted && !p.eat('"') {
		p.err = "want a key"
	}
	return name
}

// check reports where v departs from sh: a documented key missing, an
// array given as null or as something else, an object as something else
// (an object may be null where nothing could be produced).
func (sh *shape) check(path string, v any) []string {
	if sh == nil {
		return nil
	}
	var bad []string
	if sh.array {
		arr, ok := v.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s is %v, want an array", path, v)}
		}
		for i, e := range arr {
			bad = append(bad, sh.elem.check(fmt.Sprintf("%s[%d]", path, i), e)...)
		}
		return bad
	}
	if v == nil {
		return nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return []string{fmt.Sprintf("%s is %v, want an object", path, v)}
	}
	for _, k := range sh.keys {
		val, present := obj[k]
		if !present {
			bad = append(bad, fmt.Sprintf("%s lacks %q", path, k))
			continue
		}
		bad = append(bad, sh.sub[k].check(path+"."+k, val)...)
	}
	return bad
}

// readmeShapes returns the JSON shapes README.md documents: each command's
// --json output, and "webhook" for the webhook's body.
func readmeShapes(t *testing.T) map[string]*shape {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(string(b)), " ")
	out := map[string]*shape{}
	for _, m := range regexp.MustCompile("`(\\w+)`: (an array of )?`(\\{[^`]*\\})`").FindAllStringSubmatch(text, -1) {
		sh := parseShape(t, m[3])
		if m[2] != "" {
			sh = &shape{array: true, elem: sh}
		}
		out[m[1]] = sh
	}
	m := regexp.MustCompile("receives a JSON POST after every run: `(\\{[^`]*\\})`").FindStringSubmatch(text)
	if m == nil {
		t.Fatal("README.md documents no webhook body")
	}
	out["webhook"] = parseShape(t, m[1])
	for _, name := range []string{"list", "backup", "check", "forget", "repair"} {
		if out[name] == nil {
			t.Fatalf("README.md documents no JSON for %s; found %v", name, out)
		}
	}
	return out
}

func checkShape(t *testing.T, what string, sh *shape, data []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: not JSON: %v\n%s", what, err, data)
	}
	for _, b := range sh.check(what, v) {
		t.Error(b)
	}
}

// Every JSON output matches its shape in README.md, in failures too: a
// failed host, an unavailable store, a run that failed as a whole.
func TestJSONMatchesReadme(t *testing.T) {
	shapes := readmeShapes(t)
	hook := newRecorder(t)
	missing := filepath.Join(t.TempDir(), "unmounted")
	c, cfg := cliCluster(t, []string{"worker1"}, fmt.Sprintf("\n[[store]]\nname = \"usb\"\npath = %q\n\n[notify]\nwebhook_url = %q\n", missing, hook.srv.URL+"/hook"))
	if code, _, errs := cliRun(t, cfg, "init", "--store", "local"); code != 0 {
		t.Fatalf("init: %s", errs)
	}
	cliRun(t, cfg, "backup")
	if err := c.Unit("worker1").SetOffline(true); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"backup", "--json"},
		{"list", "--json"},
		{"check", "--json"},
		{"forget", "--json", "--dry-run"},
		{"forget", "--json"},
		{"repair", "--json", "--dry-run"},
		{"repair", "--json"},
	} {
		code, out, errs := cliRun(t, cfg, args...)
		if code != exitPartial {
			t.Errorf("%s: exit %d, want %d (a host or store failed)\n%s", strings.Join(args, " "), code, exitPartial, errs)
		}
		checkShape(t, strings.Join(args, " "), shapes[args[0]], []byte(out))
	}

	// The webhook of a partial run, then of a run that failed as a whole.
	loaded, err := config.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := &app{env: Env{Getenv: func(string) string { return "" }}, configPath: cfg, cfg: loaded, log: newLogger(&strings.Builder{}, func(string) string { return "" }, "text", "error")}
	d, err := newDaemon(a)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := d.Job(ctx, nil); err != nil {
		t.Fatalf("partial run: %v", err)
	}
	c.Close() // the leader is gone: the next run fails as a whole
	if _, err := d.Job(ctx, nil); err == nil {
		t.Fatal("a run without a leader succeeded")
	}
	calls := hook.all()
	if len(calls) != 2 {
		t.Fatalf("%d webhook calls, want 2", len(calls))
	}
	for i, call := range calls {
		checkShape(t, fmt.Sprintf("webhook %d", i+1), shapes["webhook"], []byte(call.body))
	}
}
