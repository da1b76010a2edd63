// Package metrics keeps a small set of gauges with labels and writes them
// in the Prometheus text exposition format (version 0.0.4), so that piosnap
// can offer a /metrics endpoint without a client library.
//
// A Registry holds gauge families; each family has a fixed list of label
// names and one value per combination of label values. Output is sorted by
// family name and then by label values, so it is stable and diffable.
package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// ContentType is the media type of the exposition text.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

var (
	metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// Registry holds gauge families. Its methods are safe for concurrent use.
// The zero value is not usable; create one with NewRegistry.
type Registry struct {
	mu       sync.Mutex
	families map[string]*family
}

type family struct {
	name, help string
	labels     []string
	// values maps the label values joined by "\xff" to the sample.
	values map[string]sample
}

type sample struct {
	labels []string
	value  float64
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{families: map[string]*family{}}
}

// Gauge is one family of gauges sharing a name, help text and label names.
type Gauge struct {
	r *Registry
	f *family
}

// NewGauge registers a gauge family. name must be a valid Prometheus metric
// name, each label a valid label name not starting with "__", and name must
// not be registered already.
func (r *Registry) NewGauge(name, help string, labels ...string) (*Gauge, error) {
	if !metricName.MatchString(name) {
		return nil, fmt.Errorf("metric name %q is invalid: use letters, digits, '_' and ':', not starting with a digit", name)
	}
	for _, l := range labels {
		if !labelName.MatchString(l) || strings.HasPrefix(l, "__") {
			return nil, fmt.Errorf("metric %s: label name %q is invalid: use letters, digits and '_', not starting with a digit or \"__\"", name, l)
		}
	}
	for i, l := range labels {
		if slices.Contains(labels[:i], l) {
			return nil, fmt.Errorf("metric %s: label %q is listed twice", name, l)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.families[name]; ok {
		return nil, fmt.Errorf("metric %s is already registered: register each name once and keep the *Gauge", name)
	}
	f := &family{name: name, help: help, labels: slices.Clone(labels), values: map[string]sample{}}
	r.families[name] = f
	return &Gauge{r: r, f: f}, nil
}

// Set sets the gauge with the given label values, one per label name in the
// order NewGauge received them. A wrong number of values is a programming
// error and panics, as in the Prometheus client library.
func (g *Gauge) Set(value float64, labelValues ...string) {
	key := g.key(labelValues)
	g.r.mu.Lock()
	defer g.r.mu.Unlock()
	g.f.values[key] = sample{labels: slices.Clone(labelValues), value: value}
}

// Get returns the value set for the label values, and false if none is.
func (g *Gauge) Get(labelValues ...string) (float64, bool) {
	key := g.key(labelValues)
	g.r.mu.Lock()
	defer g.r.mu.Unlock()
	s, ok := g.f.values[key]
	return s.value, ok
}

// Delete removes the gauge with the given label values, if it is set.
func (g *Gauge) Delete(labelValues ...string) {
	key := g.key(labelValues)
	g.r.mu.Lock()
	defer g.r.mu.Unlock()
	delete(g.f.values, key)
}

// Each calls f with the label values and value of every gauge in the
// family, in no particular order. f may call the registry.
func (g *Gauge) Each(f func(labelValues []string, value float64)) {
	g.r.mu.Lock()
	samples := make([]sample, 0, len(g.f.values))
	for _, s := range g.f.values {
		samples = append(samples, s)
	}
	g.r.mu.Unlock()
	for _, s := range samples {
		f(slices.Clone(s.labels), s.value)
	}
}

// Reset removes every value of the family.
func (g *Gauge) Reset() {
	g.r.mu.Lock()
	defer g.r.mu.Unlock()
	clear(g.f.values)
}

func (g *Gauge) key(labelValues []string) string {
	if len(labelValues) != len(g.f.labels) {
		panic(fmt.Sprintf("metrics: %s has labels %v but got %d values %q", g.f.name, g.f.labels, len(labelValues), labelValues))
	}
	return strings.Join(labelValues, "\xff")
}

// WriteTo writes every family that has at least one value, in the text
// exposition format. It implements io.WriterTo.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	names := make([]string, 0, len(r.families))
	for n := range r.families {
		names = append(names, n)
	}
	slices.Sort(names)
	var b []byte
	for _, n := range names {
		f := r.families[n]
		if len(f.values) == 0 {
			continue
		}
		b = fmt.Appendf(b, "# HELP %s %s\n# TYPE %s gauge\n", f.name, escapeHelp(f.help), f.name)
		samples := make([]sample, 0, len(f.values))
		for _, s := range f.values {
			samples = append(samples, s)
		}
		slices.SortFunc(samples, func(x, y sample) int { return slices.Compare(x.labels, y.labels) })
		for _, s := range samples {
			b = append(b, f.name...)
			if len(f.labels) > 0 {
				b = append(b, '{')
				for i, l := range f.labels {
					if i > 0 {
						b = append(b, ',')
					}
					b = append(b, l...)
					b = append(b, `="`...)
					b = append(b, escapeLabel(s.labels[i])...)
					b = append(b, '"')
				}
				b = append(b, '}')
			}
			b = append(b, ' ')
			b = append(b, formatValue(s.value)...)
			b = append(b, '\n')
		}
	}
	r.mu.Unlock()
	n, err := w.Write(b)
	return int64(n), err
}

// ServeHTTP answers GET and HEAD with the exposition text.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "metrics: only GET and HEAD are allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", ContentType)
	if req.Method == http.MethodHead {
		return
	}
	_, _ = r.WriteTo(w)
}

func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }
