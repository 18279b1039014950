// Package objstore opens the object store that sales logs land in, from a folder or a URL,
// through gocloud.dev/blob, and lists the log objects in it.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/memblob" // mem:// for tests and demos

	"github.com/salesrank/salesrank/internal/engine"
	"github.com/salesrank/salesrank/internal/salelog"
)

// Open opens logs as a bucket. A value with a scheme ("file:///data/logs", "mem://") is a
// Go CDK URL; anything else is a local folder, which must exist.
func Open(ctx context.Context, logs string) (*blob.Bucket, error) {
	if logs == "" {
		return nil, errors.New("no logs location: set --logs to a folder or a URL such as file:///var/lib/salesrank/logs")
	}
	if strings.Contains(logs, "://") {
		b, err := blob.OpenBucket(ctx, logs)
		if err != nil {
			return nil, fmt.Errorf("open logs %s: %w", logs, err)
		}
		return b, nil
	}
	dir, err := filepath.Abs(logs)
	if err != nil {
		return nil, fmt.Errorf("open logs %s: %w", logs, err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("open logs: %s is not a folder (create it, or run \"salesrank gen --out %s\" for sample logs)", logs, logs)
	}
	b, err := fileblob.OpenBucket(dir, nil)
	if err != nil {
		return nil, fmt.Errorf("open logs %s: %w", logs, err)
	}
	return b, nil
}

// List returns every log object in the bucket in key order, leaving out markers and
// temporary files (see salelog.IsLogObject).
func List(ctx context.Context, b *blob.Bucket) ([]engine.Object, error) {
	var out []engine.Object
	it := b.List(nil)
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list logs: %w", err)
		}
		if o.IsDir || !salelog.IsLogObject(o.Key) {
			continue
		}
		out = append(out, engine.Object{Key: o.Key, Size: o.Size})
	}
}
