package migration

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0002_more.sql": {Data: []byte("B")},
		"m/0001_init.sql": {Data: []byte("A")},
		"m/notes.txt":     {Data: []byte("not a migration")},
	}
	ms, err := Load(fsys, "m/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0] != (Migration{1, "0001_init", "A"}) || ms[1] != (Migration{2, "0002_more", "B"}) {
		t.Errorf("Load = %+v, want 0001_init then 0002_more", ms)
	}
	for name, bad := range map[string]fstest.MapFS{
		"no number":    {"m/init.sql": {}},
		"version zero": {"m/0000_init.sql": {}},
		"repeated":     {"m/0001_a.sql": {}, "m/001_b.sql": {}},
		"not a number": {"m/00x1_a.sql": {}},
	} {
		if _, err := Load(bad, "m/*.sql"); err == nil || !strings.Contains(err.Error(), "migration") {
			t.Errorf("%s: Load error = %v, want one naming the migration", name, err)
		}
	}
}
