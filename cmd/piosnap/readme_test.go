package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/piosnap/piosnap/config"
)

// readme returns README.md.
func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// codeSpans returns README's code: every line of a fenced or indented block
// and every inline `span`, each as one string.
func codeSpans(md string) []string {
	var spans []string
	fenced := false
	for _, line := range strings.Split(md, "\n") {
		switch {
		case strings.HasPrefix(line, "```"):
			fenced = !fenced
		case fenced, strings.HasPrefix(line, "    "):
			spans = append(spans, strings.TrimSpace(line))
		default:
			parts := strings.Split(line, "`")
			for i := 1; i < len(parts); i += 2 {
				spans = append(spans, parts[i])
			}
		}
	}
	return spans
}

// helpText returns what `piosnap ARGS -h` prints, or "" when it fails.
func helpText(args ...string) string {
	var out, errb bytes.Buffer
	code := Main(context.Background(), append(args, "-h"), Env{
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		Getenv: func(string) string { return "" },
	})
	if code != exitOK {
		return ""
	}
	return out.String()
}

var (
	readmeCommand = regexp.MustCompile(`(?:^|sudo |piosnap )piosnap ([a-z]+)(?: (check|example|passwd)\b)?`)
	readmeFlag    = regexp.MustCompile(`(?:^|[\s\[])(--?[a-z][a-z-]*)`)
)

// TestREADMECommands checks that every `piosnap COMMAND --flag` README.md
// shows names a command piosnap has and flags that command accepts, so that
// a renamed or removed flag cannot leave the README behind.
func TestREADMECommands(t *testing.T) {
	checked := 0
	for _, span := range codeSpans(readme(t)) {
		locs := readmeCommand.FindAllStringSubmatchIndex(span, -1)
		for i, loc := range locs {
			cmd := span[loc[2]:loc[3]]
			args := []string{cmd}
			if loc[4] >= 0 {
				args = append(args, span[loc[4]:loc[5]])
			}
			// The command's words run to the next piosnap command, pipe or &&.
			end := len(span)
			if i+1 < len(locs) {
				end = locs[i+1][0]
			}
			rest := span[loc[1]:end]
			if j := strings.IndexAny(rest, "|;&"); j >= 0 {
				rest = rest[:j]
			}
			help := helpText(args...)
			if !strings.HasPrefix(help, "Usage: piosnap "+cmd) {
				t.Errorf("README shows %q: piosnap has no command %q", span, cmd)
				continue
			}
			for _, m := range readmeFlag.FindAllStringSubmatch(rest, -1) {
				flag := m[1]
				if flag == "-h" {
					continue
				}
				if !strings.Contains(help, "\n  "+flag+"\n") && !strings.Contains(help, "\n  "+flag+" ") {
					t.Errorf("README shows %q: piosnap %s has no flag %s", span, cmd, flag)
				}
				checked++
			}
		}
	}
	if checked < 20 {
		t.Errorf("checked only %d flags in README's commands; did the way README quotes commands change?", checked)
	}
}

// TestREADMEConfig checks that every TOML block README.md shows loads with
// the config package. A block that is a fragment (no [[store]]) is loaded
// with a local store added; one that starts with a sub-table such as
// [source.pre_restore] is loaded after the block before it.
func TestREADMEConfig(t *testing.T) {
	blocks := regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllStringSubmatch(readme(t), -1)
	if len(blocks) < 4 {
		t.Fatalf("README has %d TOML blocks; did the way README quotes configuration change?", len(blocks))
	}
	dir := t.TempDir()
	prev := ""
	for i, b := range blocks {
		text := strings.ReplaceAll(b[1], "\n   ", "\n") // blocks inside a list item are indented
		first := strings.TrimSpace(text)
		if strings.HasPrefix(first, "[source.") || strings.HasPrefix(first, "[store.") {
			text = prev + "\n" + text
		}
		prev = text
		if !strings.Contains(text, "[[store]]") {
			text += "\n[[store]]\nname = \"local\"\npath = \"" + filepath.ToSlash(filepath.Join(dir, "repo")) + "\"\n"
		}
		path := filepath.Join(dir, "block.toml")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := config.Load(path); err != nil {
			t.Errorf("README's TOML block %d does not load: %v\n%s", i+1, err, b[1])
		}
	}
}

// TestREADMELayout checks that README.md's layout names every package of
// the module, so that a new package cannot go unmentioned.
func TestREADMELayout(t *testing.T) {
	md := readme(t)
	root := filepath.Join("..", "..")
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "dist") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		pkg, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil || pkg == "." || seen[pkg] {
			return err
		}
		seen[pkg] = true
		if !strings.Contains(md, "`"+filepath.ToSlash(pkg)+"`") {
			t.Errorf("README.md's layout does not name the package %s", filepath.ToSlash(pkg))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) < 10 {
		t.Errorf("found only %d packages under %s", len(seen), root)
	}
}
