package staging

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"
)

// writeRun writes a finished run of two shards and returns its name and records.
func writeRun(t testing.TB, b *blob.Bucket, at time.Time) (string, map[string][][]byte) {
	t.Helper()
	ctx := context.Background()
	run := NewRun(at)
	m := &Manifest{Version: 1, Run: run, Written: at}
	recs := map[string][][]byte{}
	for i, kind := range []string{"sums", "objects"} {
		w, err := NewWriter(ctx, b, run, kind)
		if err != nil {
			t.Fatal(err)
		}
		for j := range 100 * (i + 1) {
			rec := []byte(fmt.Sprintf("%s record %d %s", kind, j, strings.Repeat("x", j)))
			if err := w.Write(rec); err != nil {
				t.Fatal(err)
			}
			recs[kind] = append(recs[kind], rec)
		}
		sh, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		m.Shards = append(m.Shards, sh)
	}
	if err := WriteManifest(ctx, b, m); err != nil {
		t.Fatal(err)
	}
	return run, recs
}

func readAll(ctx context.Context, b *blob.Bucket, run string) (map[string][][]byte, error) {
	m, err := ReadManifest(ctx, b, run)
	if err != nil {
		return nil, err
	}
	got := map[string][][]byte{}
	for _, sh := range m.Shards {
		err := ReadShard(ctx, b, run, sh, func(rec []byte) error {
			got[sh.Kind] = append(got[sh.Kind], bytes.Clone(rec))
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return got, nil
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	run, want := writeRun(t, b, time.Now())
	got, err := readAll(ctx, b, run)
	if err != nil {
		t.Fatal(err)
	}
	for kind, recs := range want {
		if !slices.EqualFunc(got[kind], recs, bytes.Equal) {
			t.Errorf("%s: read %d records, want the %d written", kind, len(got[kind]), len(recs))
		}
	}
}

// TestDamageRefused changes a listed shard after it was written in every way a store or a
// stray writer could: each must fail the read, never give fewer or other records.
func TestDamageRefused(t *testing.T) {
	ctx := context.Background()
	damages := map[string]func([]byte) []byte{
		"truncated":      func(d []byte) []byte { return d[:len(d)-7] },
		"one bit":        func(d []byte) []byte { d[len(d)/2] ^= 1; return d },
		"record dropped": func(d []byte) []byte { return d[:len(d)-len("objects record 199 ")-199-2] },
		"appended":       func(d []byte) []byte { return append(d, 3, 'a', 'b', 'c') },
		"empty":          func(d []byte) []byte { return nil },
		"other magic":    func(d []byte) []byte { d[0] = 'S'; return d },
	}
	for name, damage := range damages {
		t.Run(name, func(t *testing.T) {
			b := memblob.OpenBucket(nil)
			defer b.Close()
			run, _ := writeRun(t, b, time.Now())
			m, err := ReadManifest(ctx, b, run)
			if err != nil {
				t.Fatal(err)
			}
			key := run + "/" + m.Shards[1].Name
			data, err := b.ReadAll(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.WriteAll(ctx, key, damage(data), nil); err != nil {
				t.Fatal(err)
			}
			if _, err := readAll(ctx, b, run); err == nil {
				t.Fatal("a damaged shard was read without error")
			}
		})
	}
}

func TestUnfinishedRunHasNoOutput(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	run := NewRun(time.Now())
	w, err := NewWriter(ctx, b, run, "sums")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("a shard whose run died before its manifest"))
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadManifest(ctx, b, run); !errors.Is(err, ErrNoManifest) {
		t.Fatalf("ReadManifest of a run without one: %v, want ErrNoManifest", err)
	}
	// A manifest of another run under this run's name is refused too.
	other, _ := writeRun(t, b, time.Now())
	data, _ := b.ReadAll(ctx, other+"/"+ManifestName)
	b.WriteAll(ctx, run+"/"+ManifestName, data, nil)
	if _, err := ReadManifest(ctx, b, run); err == nil {
		t.Fatal("read another run's manifest as this run's")
	}
}

func TestDeleteOlder(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	now := time.Date(2026, 12, 4, 5, 0, 0, 0, time.UTC)
	old, _ := writeRun(t, b, now.Add(-25*time.Hour))
	recent, _ := writeRun(t, b, now.Add(-time.Hour))
	b.WriteAll(ctx, "not-a-run/keep", []byte("x"), nil)
	deleted, err := DeleteOlder(ctx, b, now.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(deleted, []string{old}) {
		t.Errorf("deleted %v, want [%s]", deleted, old)
	}
	for key, want := range map[string]bool{old + "/" + ManifestName: false, recent + "/" + ManifestName: true, "not-a-run/keep": true} {
		if ok, _ := b.Exists(ctx, key); ok != want {
			t.Errorf("%s exists: %v, want %v", key, ok, want)
		}
	}
	if err := Delete(ctx, b, recent); err != nil {
		t.Fatal(err)
	}
	if ok, _ := b.Exists(ctx, recent+"/"+ManifestName); ok {
		t.Error("Delete left the run's manifest")
	}
}

func TestRunTime(t *testing.T) {
	at := time.Date(2026, 12, 4, 5, 6, 7, 0, time.UTC)
	got, ok := RunTime(NewRun(at))
	if !ok || !got.Equal(at) {
		t.Errorf("RunTime(NewRun(%v)) = %v, %v", at, got, ok)
	}
	for _, bad := range []string{"", "run-", "run-2026", "x-20261204T050607Z-00", "run-20261304T050607Z-00"} {
		if _, ok := RunTime(bad); ok {
			t.Errorf("RunTime(%q) ok", bad)
		}
	}
}

// FuzzReadShard feeds ReadShard arbitrary bytes as a shard, described with their true size
// and SHA-256: it must never panic, and it may accept them only with exactly the record
// count claimed, records that fit in the bytes given.
func FuzzReadShard(f *testing.F) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	run, _ := writeRun(f, b, time.Now())
	m, _ := ReadManifest(ctx, b, run)
	for _, sh := range m.Shards {
		data, _ := b.ReadAll(ctx, run+"/"+sh.Name)
		f.Add(data, sh.Records)
	}
	f.Add([]byte(magic+"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"), int64(1))
	f.Add([]byte(magic+"\x05ab"), int64(1))
	f.Fuzz(func(t *testing.T, data []byte, records int64) {
		b := memblob.OpenBucket(nil)
		defer b.Close()
		if err := b.WriteAll(ctx, "r/s.rec", data, nil); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		var n int64
		var total int
		err := ReadShard(ctx, b, "r", Shard{Name: "s.rec", Records: records, Bytes: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}, func(rec []byte) error {
			n++
			total += len(rec)
			return nil
		})
		if total > len(data) {
			t.Fatalf("read %d bytes of records from %d bytes", total, len(data))
		}
		if err == nil && n != records {
			t.Fatalf("accepted %d records, the description says %d", n, records)
		}
		if err == nil && !bytes.HasPrefix(data, []byte(magic)) {
			t.Fatal("accepted a shard without the magic line")
		}
	})
}
