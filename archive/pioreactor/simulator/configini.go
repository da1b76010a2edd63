package simulator

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// pyConfig is the subset of Python's configparser.ConfigParser (default
// options: "=" and ":" delimiters, "#" and ";" full-line comments, option
// names lower-cased, strict) that the import task's config.ini rewrite
// exercises.
type pyConfig struct {
	sections []*pySection
}

type pySection struct {
	name string
	keys []string
	vals map[string]string
}

var (
	sectionRE = regexp.MustCompile(`^\[(.+)\]`)
	optionRE  = regexp.MustCompile(`^(.*?)\s*([=:])\s*(.*)$`)
)

func parsePyConfig(text string) (*pyConfig, error) {
	cfg := &pyConfig{}
	var sec *pySection
	var opt string
	optIndent := 0
	for n, line := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		stripped := strings.TrimSpace(line)
		if strings.HasPrefix(stripped, "#") || strings.HasPrefix(stripped, ";") {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " \t"))
		if stripped == "" {
			if sec != nil && opt != "" {
				sec.vals[opt] += "\n" // empty_lines_in_values
			}
			continue
		}
		if sec != nil && opt != "" && indent > optIndent {
			sec.vals[opt] += "\n" + stripped
			continue
		}
		if m := sectionRE.FindStringSubmatch(stripped); m != nil {
			if cfg.section(m[1]) != nil {
				return nil, fmt.Errorf("config.ini line %d: section %q already exists (DuplicateSectionError)", n+1, m[1])
			}
			sec = &pySection{name: m[1], vals: map[string]string{}}
			cfg.sections = append(cfg.sections, sec)
			opt = ""
			continue
		}
		if sec == nil {
			return nil, fmt.Errorf("config.ini line %d: option outside any section (MissingSectionHeaderError)", n+1)
		}
		m := optionRE.FindStringSubmatch(stripped)
		if m == nil || m[1] == "" {
			return nil, fmt.Errorf("config.ini line %d: %q is not key=value (ParsingError)", n+1, stripped)
		}
		key := strings.ToLower(strings.TrimRight(m[1], " \t"))
		if _, dup := sec.vals[key]; dup {
			return nil, fmt.Errorf("config.ini line %d: option %q in section %q already exists (DuplicateOptionError)", n+1, key, sec.name)
		}
		sec.keys = append(sec.keys, key)
		sec.vals[key] = strings.TrimSpace(m[3])
		opt, optIndent = key, indent
	}
	for _, s := range cfg.sections {
		for k, v := range s.vals {
			s.vals[k] = strings.TrimRight(v, "\n")
		}
	}
	return cfg, nil
}

func (c *pyConfig) section(name string) *pySection {
	for _, s := range c.sections {
		if s.name == name {
			return s
		}
	}
	return nil
}

func (c *pyConfig) set(section, key, value string) {
	s := c.section(section)
	if s == nil {
		s = &pySection{name: section, vals: map[string]string{}}
		c.sections = append(c.sections, s)
	}
	if _, ok := s.vals[key]; !ok {
		s.keys = append(s.keys, key)
	}
	s.vals[key] = value
}

// String writes the config as ConfigParser.write(f, space_around_delimiters=False).
func (c *pyConfig) String() string {
	var b strings.Builder
	for _, s := range c.sections {
		fmt.Fprintf(&b, "[%s]\n", s.name)
		for _, k := range s.keys {
			fmt.Fprintf(&b, "%s=%s\n", k, strings.ReplaceAll(s.vals[k], "\n", "\n\t"))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// rewriteConfig applies the import task's forced edit: [storage]
// temporary_cache is set and the file is rewritten by configparser, which
// drops comments and lower-cases option names. A missing config.ini is
// created with just that option (inference: the real task would do the same
// with ConfigParser.read ignoring the missing file).
func rewriteConfig(p string) error {
	raw, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", p, err)
	}
	cfg, err := parsePyConfig(string(raw))
	if err != nil {
		return err
	}
	cfg.set("storage", "temporary_cache", temporaryCacheOption)
	if err := os.WriteFile(p, []byte(cfg.String()), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}
