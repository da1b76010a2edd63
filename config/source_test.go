package config

import (
	"strings"
	"testing"
	"time"
)

const storeTOML = "[[store]]\npath = \"/tmp/repo\"\n"

func TestSourceParses(t *testing.T) {
	c, err := Parse(storeTOML + `
[[source]]
kind = "dir"
name = "cells"
paths = ["/var/cells", "/srv/datasource"]
excludes = ["data/.minio.sys/tmp", "**/*.tmp"]
[source.hooks]
stop = ["systemctl", "stop", "cells"]
start = ["systemctl", "start", "cells"]
require_unlocked = ["**/*.db"]
[source.database]
engine = "mariadb"
name = "cells"
credential = "cells-db.cnf"
`)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Source("cells")
	if s == nil || len(s.Paths) != 2 || s.Hooks.Timeout.Duration != DefaultHookTimeout || s.Database.Timeout.Duration != time.Minute {
		t.Errorf("source = %+v", s)
	}
	if c.PioreactorEnabled() {
		t.Error("a configuration with sources and no [pioreactor] backs up a cluster")
	}
	c, err = Parse(storeTOML + "[pioreactor]\nleader = \"pio.local\"\n[[source]]\nkind = \"dir\"\nname = \"cells\"\npaths = [\"/var/cells\"]\n")
	if err != nil || !c.PioreactorEnabled() {
		t.Errorf("with [pioreactor]: %v, enabled %v", err, c != nil && c.PioreactorEnabled())
	}
	c, _ = Parse(storeTOML)
	if !c.PioreactorEnabled() {
		t.Error("a configuration without sources must back up the cluster")
	}
}

func TestSourceErrors(t *testing.T) {
	for _, tc := range []struct{ toml, want string }{
		{"kind = \"dir\"\npaths = [\"/a\"]", "give each source a name"},
		{"kind = \"zfs\"\nname = \"x\"\npaths = [\"/a\"]", `kind = "zfs"`},
		{"kind = \"dir\"\nname = \"x\"", "paths is empty"},
		{"kind = \"dir\"\nname = \"x\"\npaths = [\"var/cells\"]", "absolute"},
		{"kind = \"dir\"\nname = \"x\"\npaths = [\"/\"]", "other than /"},
		{"kind = \"dir\"\nname = \"x\"\npaths = [\"/var/cells\", \"/var/cells/data\"]", "overlaps"},
		{"kind = \"dir\"\nname = \"x\"\npaths = [\"/a\"]\nexcludes = [\"/abs\"]", "relative"},
		{"kind = \"dir\"\nname = \"x\"\npaths = [\"/a\"]\nexcludes = [\"[\"]", "pattern"},
		{"kind = \"dir\"\nname = \"x\"\npaths = [\"/a\"]\n[source.hooks]\nstop = [\"true\"]", "go together"},
		{"kind = \"dir\"\nname = \"x\"\npaths = [\"/a\"]\n[source.hooks]\nrequire_unlocked = [\"*.db\"]", "set hooks.stop"},
		{"kind = \"dir\"\nname = \"x\"\npaths = [\"/a\"]\n[source.database]\nengine = \"oracle\"", `engine = "oracle"`},
		{"kind = \"dir\"\nname = \"x\"\npaths = [\"/a\"]\n[source.database]\nengine = \"mariadb\"", "name is empty"},
		{"kind = \"dir\"\nname = \"x\"\npaths = [\"/a\"]\n[source.database]\nengine = \"mariadb\"\nname = \"c\"\noptions_file = \"/a\"\ncredential = \"b\"", "not both"},
		{"kind = \"dir\"\nname = \"x\"\npaths = [\"/a\"]\n[source.database]\nengine = \"command\"", "needs dump"},
		{"kind = \"dir\"\nname = \"x\"\npaths = [\"/a\"]\n[source.database]\nengine = \"mariadb\"\nname = \"c\"\npassword = \"x\"", "unknown key"},
		{"kind = \"dir\"\nname = \"x\"\npaths = [\"/a\"]\nschedule = \"weekly\"", `source "x": schedule "weekly"`},
		{"kind = \"dir\"\nname = \"x\"\npaths = [\"/a\"]\nschedule = \"@every 1h\"", "leave schedule out to back it up on the global schedule"},
		{"kind = \"dir\"\nname = \"x\"\npaths = [\"/a\"]\n[source.pre_restore]\nkeep_last = -1", `source "x": pre_restore.keep_last = -1: want 0 or more`},
		{"kind = \"dir\"\nname = \"x\"\npaths = [\"/a\"]\n[source.pre_restore]\nkeep_within = \"30m\"", `source "x": pre_restore.keep_within: retention duration "30m"`},
		{"kind = \"dir\"\nname = \"x\"\npaths = [\"/a\"]\n[source.pre_restore]\nkeep_within = \"a week\"", "pre_restore.keep_within"},
		{"kind = \"dir\"\nname = \"x\"\npaths = [\"/a\"]\n[source.pre_restore]\nkeep = 3", "unknown key"},
	} {
		_, err := Parse(storeTOML + "[[source]]\n" + tc.toml + "\n")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.toml, err, tc.want)
		}
	}
	if _, err := Parse(storeTOML + "[[source]]\nkind = \"dir\"\nname = \"x\"\npaths = [\"/a\"]\n[[source]]\nkind = \"dir\"\nname = \"x\"\npaths = [\"/b\"]\n"); err == nil || !strings.Contains(err.Error(), "unique") {
		t.Errorf("duplicate names: %v", err)
	}
}

// TestExampleSourceParses uncomments the example's [[source]] block.
func TestExampleSourceParses(t *testing.T) {
	i := strings.Index(Example, "# [[source]]")
	if i < 0 {
		t.Fatal("the example has no [[source]] block")
	}
	block, _, _ := strings.Cut(Example[i:], "\n\n")
	var b strings.Builder
	for _, line := range strings.Split(block, "\n") {
		line = strings.TrimPrefix(line, "# ")
		if strings.HasPrefix(line, "# ") {
			continue
		}
		b.WriteString(line + "\n")
	}
	c, err := Parse(storeTOML + b.String())
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	s := c.Source("cells")
	if s == nil || s.Database == nil || len(s.Excludes) != 3 || len(s.Hooks.RequireUnlocked) != 2 || s.PreRestore.KeepLast == nil || s.PreRestore.KeepWithin != "7d" {
		t.Errorf("source = %+v", s)
	}
}

func TestPreRestorePolicy(t *testing.T) {
	three := 3
	zero := 0
	for _, tc := range []struct {
		p      PreRestore
		last   int
		within string
	}{
		{PreRestore{}, DefaultPreRestoreKeepLast, DefaultPreRestoreKeepWithin},
		{PreRestore{KeepLast: &three, KeepWithin: "1mo"}, 3, "1mo"},
		{PreRestore{KeepLast: &zero, KeepWithin: "0d"}, 0, "0d"},
	} {
		last, within, err := tc.p.Policy()
		if err != nil || last != tc.last || within.String() != tc.within {
			t.Errorf("%+v: %d, %s, %v; want %d, %s", tc.p, last, within, err, tc.last, tc.within)
		}
	}
}

func TestSourceSchedule(t *testing.T) {
	c, err := Parse("schedule = \"30 1 * * *\"\n" + storeTOML + `
[[source]]
kind = "dir"
name = "cells"
paths = ["/var/cells"]
schedule = "0 3 * * sun"

[[source]]
kind = "dir"
name = "wiki"
paths = ["/srv/wiki"]
`)
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{"cells": "0 3 * * sun", "wiki": "30 1 * * *", "worker1": "30 1 * * *"} {
		if got := c.ScheduleOf(host); got != want {
			t.Errorf("ScheduleOf(%s) = %q, want %q", host, got, want)
		}
	}
	if own := c.OwnSchedules(); len(own) != 1 || own["cells"] != "0 3 * * sun" {
		t.Errorf("OwnSchedules = %v, want cells only", own)
	}
}
