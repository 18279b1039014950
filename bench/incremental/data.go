package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/loggen"
)

// dataset is where the generated logs are cached: the week before the cutoff T, the hours
// after T, and one folder per minute after those hours.
type dataset struct {
	week    string
	hours   string
	minutes []string
}

// dirs returns every folder of the dataset.
func (d dataset) dirs() []string { return append([]string{d.week, d.hours}, d.minutes...) }

// remove deletes the generated logs.
func (d dataset) remove() {
	for _, dir := range d.dirs() {
		os.RemoveAll(dir)
	}
}

// generate writes, under c.out, whatever part of the dataset is not there complete from an
// earlier run with the same flags.
func generate(ctx context.Context, c config, log func(format string, args ...any)) (dataset, error) {
	T := c.cutoff
	C := T.Add(time.Duration(c.hours) * time.Hour) // the cutoff after the hourly steps
	rate := loggen.DefaultRate * c.fraction

	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return dataset{}, err
	}
	tag := fmt.Sprintf("f%s-seed%d-parts%d", strconv.FormatFloat(c.fraction, 'f', -1, 64), c.seed, c.parts)
	data := dataset{
		week:  filepath.Join(c.out, "week-"+T.Format("20060102T15")+"-"+tag),
		hours: filepath.Join(c.out, "hours-"+T.Format("20060102T15")+"-"+tag),
	}
	base := loggen.Config{Rate: rate, Seed: c.seed, Parts: c.parts}
	weekCfg := base
	weekCfg.Start, weekCfg.End = T.Add(-salesrank.WindowLength), T
	hoursCfg := base
	hoursCfg.Start, hoursCfg.End = T, C
	type gen struct {
		dir string
		cfg loggen.Config
	}
	gens := []gen{{data.week, weekCfg}, {data.hours, hoursCfg}}
	for k := range c.minutes {
		m := base
		m.Parts = 1
		m.Start, m.End = C.Add(time.Duration(k)*time.Minute), C.Add(time.Duration(k+1)*time.Minute)
		d := filepath.Join(c.out, "minute-"+m.Start.Format("20060102T1504")+"-"+tag)
		data.minutes = append(data.minutes, d)
		gens = append(gens, gen{d, m})
	}
	for _, g := range gens {
		if loggen.Complete(g.dir, g.cfg) {
			continue
		}
		if err := os.RemoveAll(g.dir); err != nil {
			return dataset{}, err
		}
		t0 := time.Now()
		st, err := loggen.WriteDir(ctx, g.dir, g.cfg, loggen.Options{})
		if err != nil {
			return dataset{}, fmt.Errorf("generate %s: %w", g.dir, err)
		}
		log("generated %s: %d lines, %d objects, %.1f MB in %.1f s", g.dir, st.Lines, st.Objects, float64(st.Bytes)/1e6, time.Since(t0).Seconds())
	}
	return data, nil
}

// linkTree hard-links (or copies, across file systems) every log object under src into dst,
// at the relative path rename returns (all objects, as they are, when rename is nil). It
// leaves out loggen's _SUCCESS marker and anything else that is not a log object.
func linkTree(src, dst string, rename func(rel string) (string, bool)) (int, error) {
	n := 0
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if name := d.Name(); strings.HasPrefix(name, "_") || strings.HasPrefix(name, ".") {
			return nil
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rename != nil {
			var ok bool
			if rel, ok = rename(rel); !ok {
				return nil
			}
		}
		to := filepath.Join(dst, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		if err := os.Link(path, to); err != nil {
			if err := copyFile(path, to); err != nil {
				return err
			}
		}
		n++
		return nil
	})
	return n, err
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp")
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
