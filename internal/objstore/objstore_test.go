package objstore_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"encoding/hex"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"gocloud.dev/blob"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/counting"
	"github.com/salesrank/salesrank/internal/objstore"
	"github.com/salesrank/salesrank/internal/ranker"
	"github.com/salesrank/salesrank/internal/sqlite"
)

// TestMain sends any HTTP request that is not to loopback to a closed loopback port, so a
// test that would reach a real cloud fails instead of touching the network. The proxy is
// read from the environment once per process, hence here and not in a test.
func TestMain(m *testing.M) {
	os.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	os.Setenv("HTTPS_PROXY", "http://127.0.0.1:1")
	os.Unsetenv("NO_PROXY")
	os.Exit(m.Run())
}

var now = time.Date(2026, 11, 20, 13, 30, 0, 0, time.UTC)

func gz(t testing.TB, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// logObjects are the objects every test stores, by key relative to the "logs/" folder: two
// logs (one gzip-compressed), a marker and a temporary file that must not be listed.
func logObjects(t testing.TB) map[string][]byte {
	return map[string][]byte{
		"2026/11/19/part-0.tsv": []byte("timestamp\tproduct_id\tcategory_id\tquantity\ttotal_price\tseller_id\tbuyer_id\n" +
			"1795096800\t1\t1\t5\t20.00\t1\t1\n" +
			"1795096800\t2\t1\t3\t9.00\t1\t2\n" +
			"2026-11-19T10:00:00Z\t3\t2\t7\t7\t2\t3\n" +
			"garbage\n"),
		"2026/11/19/part-1.tsv.gz":   gz(t, "1795100400\t2\t1\t4\t12.00\t1\t4\r\n1795100400\t4\t2\t7\t1.5\t3\t5\r\n"),
		"2026/11/19/_SUCCESS":        nil,
		"2026/11/19/.part-2.tsv.tmp": []byte("1795100400\t9\t9\t999\t1\t1\t1\n"),
	}
}

// wantKeys are the logObjects that are logs, in key order.
var wantKeys = []string{"2026/11/19/part-0.tsv", "2026/11/19/part-1.tsv.gz"}

// fakeS3 starts an in-process S3 server with a bucket "sales" holding logObjects under
// "logs/" and one log outside it, and returns the server's URL. Credentials and region
// come from the environment, as in production.
func fakeS3(t *testing.T) string {
	t.Helper()
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ACCESS_KEY_ID", "test-key")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_PROFILE", "")
	dir := t.TempDir() // keep the host's ~/.aws out of the test
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))

	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(srv.Close)

	ctx := context.Background()
	client := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		UsePathStyle: true,
		Credentials:  aws.AnonymousCredentials{},
	})
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("sales")}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	objects := logObjects(t)
	objects["../other/part-9.tsv"] = []byte("1795096800\t8\t8\t1\t1\t1\t1\n")
	for k, v := range objects {
		key := strings.TrimPrefix("logs/"+k, "logs/../")
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("sales"), Key: aws.String(key), Body: bytes.NewReader(v)}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	return srv.URL
}

func s3URL(endpoint, path, query string) string {
	return "s3://sales" + path + "?endpoint=" + url.QueryEscape(endpoint) + "&use_path_style=true&region=us-east-1&response_checksum_validation=when_required" + query
}

func open(t *testing.T, logs string) *blob.Bucket {
	t.Helper()
	b, err := objstore.Open(context.Background(), logs)
	if err != nil {
		t.Fatalf("Open(%q): %v", logs, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestS3ListAndRead(t *testing.T) {
	ctx := context.Background()
	endpoint := fakeS3(t)
	objects := logObjects(t)
	for _, logs := range []string{
		s3URL(endpoint, "/logs/", ""),
		s3URL(endpoint, "/logs", ""),
		s3URL(endpoint, "", "&prefix=logs/"),
	} {
		b := open(t, logs)
		got, err := objstore.ListObjects(ctx, b)
		if err != nil {
			t.Fatalf("%s: ListObjects: %v", logs, err)
		}
		var keys []string
		for _, o := range got {
			keys = append(keys, o.Key)
			data := objects[o.Key]
			sum := md5.Sum(data)
			if want := `"` + hex.EncodeToString(sum[:]) + `"`; o.ETag != want {
				t.Errorf("%s: %s: ETag %s, want %s", logs, o.Key, o.ETag, want)
			}
			if o.Size != int64(len(data)) {
				t.Errorf("%s: %s: size %d, want %d", logs, o.Key, o.Size, len(data))
			}
			if d := time.Since(o.ModTime); d < -time.Minute || d > time.Minute {
				t.Errorf("%s: %s: ModTime %v, want about now", logs, o.Key, o.ModTime)
			}
			back, err := b.ReadAll(ctx, o.Key)
			if err != nil {
				t.Fatalf("%s: read %s: %v", logs, o.Key, err)
			}
			if !bytes.Equal(back, data) {
				t.Errorf("%s: %s read back %q, want %q", logs, o.Key, back, data)
			}
		}
		if !slices.Equal(keys, wantKeys) {
			t.Errorf("%s: ListObjects keys %q, want %q", logs, keys, wantKeys)
		}
		for _, o := range got {
			st, err := objstore.Stat(ctx, b, o.Key)
			if err != nil || st != o {
				t.Errorf("%s: Stat(%s) = %+v, %v; want %+v as listed", logs, o.Key, st, err, o)
			}
		}
		if st, err := objstore.Stat(ctx, b, wantKeys[0][:len(wantKeys[0])-2]); err == nil {
			t.Errorf("%s: Stat of a key that is only a prefix = %+v, want an error", logs, st)
		}
	}

	// Without a folder, the whole bucket.
	all, err := objstore.ListObjects(ctx, open(t, s3URL(endpoint, "", "")))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range all {
		keys = append(keys, o.Key)
	}
	if want := []string{"logs/" + wantKeys[0], "logs/" + wantKeys[1], "other/part-9.tsv"}; !slices.Equal(keys, want) {
		t.Errorf("whole bucket: keys %q, want %q", keys, want)
	}
}

// TestETagWithoutStoreETag checks the fallbacks of ListObjects: MD5 where the driver has
// it (mem://), else a weak tag from modification time and size (files written directly).
func TestETagWithoutStoreETag(t *testing.T) {
	ctx := context.Background()
	mem := open(t, "mem://")
	if err := mem.WriteAll(ctx, "a.tsv", []byte("x\n"), nil); err != nil {
		t.Fatal(err)
	}
	got, err := objstore.ListObjects(ctx, mem)
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum([]byte("x\n"))
	if len(got) != 1 || got[0].ETag != `"`+hex.EncodeToString(sum[:])+`"` || got[0].ModTime.IsZero() {
		t.Errorf("mem:// ListObjects = %+v, want a.tsv with the MD5 as ETag", got)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.tsv"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(dir, "a.tsv"))
	got, err = objstore.ListObjects(ctx, open(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !strings.HasPrefix(got[0].ETag, `W/"`) || !got[0].ModTime.Equal(fi.ModTime()) || got[0].Size != 2 {
		t.Errorf("folder ListObjects = %+v, want a.tsv, size 2, ModTime %v, a weak ETag", got, fi.ModTime())
	}
}

// rank runs the current ranking job over b and returns the published snapshot.
func rank(t *testing.T, b *blob.Bucket) (*salesrank.Snapshot, *ranker.Summary) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "salesrank.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	job := &ranker.Job{Logs: b, Engine: &counting.Local{}, Store: db, Top: 10}
	sum, err := job.Run(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := db.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return snap, sum
}

// TestRankOverEveryStore runs the ranking job over the same objects in a local folder, in
// mem:// and in S3, and wants the same snapshot from each.
func TestRankOverEveryStore(t *testing.T) {
	ctx := context.Background()
	objects := logObjects(t)

	dir := t.TempDir()
	for k, v := range objects {
		p := filepath.Join(dir, filepath.FromSlash(k))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, v, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, wantSum := rank(t, open(t, dir))
	if wantSum.Objects != 2 || wantSum.LinesRead != 6 || wantSum.LinesRejected != 1 || wantSum.RankedRows != 4 {
		t.Fatalf("folder: summary %+v; want 2 objects, 6 lines read, 1 rejected, 4 ranked rows", wantSum)
	}

	mem := open(t, "mem://")
	for k, v := range objects {
		if err := mem.WriteAll(ctx, k, v, nil); err != nil {
			t.Fatal(err)
		}
	}
	endpoint := fakeS3(t)
	for name, b := range map[string]*blob.Bucket{
		"mem://": mem,
		"s3://":  open(t, s3URL(endpoint, "/logs/", "")),
	} {
		got, sum := rank(t, b)
		if !reflect.DeepEqual(got.Rankings, want.Rankings) || got.Window != want.Window {
			t.Errorf("%s: snapshot %+v, want %+v (from a folder)", name, got, want)
		}
		if sum.Objects != wantSum.Objects || sum.LinesRead != wantSum.LinesRead || sum.LinesRejected != wantSum.LinesRejected || sum.Bytes != wantSum.Bytes {
			t.Errorf("%s: summary %+v, want the folder's %+v", name, sum, wantSum)
		}
	}
}

// TestGCS opens gs:// URLs without making a request: the network cannot be used here, so
// listing and reading from GCS are left to the driver's own tests.
func TestGCS(t *testing.T) {
	ctx := context.Background()
	t.Setenv("STORAGE_EMULATOR_HOST", "")
	// A key file that does not exist: credentials are looked for there and nowhere else
	// (no metadata server probe).
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "missing-key.json"))
	_, err := objstore.Open(ctx, "gs://sales/logs/")
	if err == nil || !strings.Contains(err.Error(), "GOOGLE_APPLICATION_CREDENTIALS") || !strings.Contains(err.Error(), "anonymous=true") {
		t.Errorf("gs:// without credentials: error %v, want one naming GOOGLE_APPLICATION_CREDENTIALS and anonymous=true", err)
	}
	open(t, "gs://sales/logs/?anonymous=true")
}

func TestOpenErrors(t *testing.T) {
	for _, tc := range []struct{ logs, want string }{
		{"", "set --logs"},
		{"ftp://host/logs", `unknown scheme "ftp": use a folder or a URL with one of the schemes file, mem, s3, gs`},
		{"https://sales.s3.amazonaws.com/logs/", "write s3://BUCKET/PREFIX/"},
		{"s3:///logs/", "no bucket name"},
		{"s3://sales/logs/?prefix=logs/", "given twice"},
		{"s3://sales?endpoint=minio:9000", "write endpoint=http://minio:9000"},
		{"s3://sales?region=us-east-1&colour=blue", `unknown query parameter "colour"`},
		{"mem://?colour=blue", `invalid query parameter "colour"`},
		{filepath.Join(t.TempDir(), "missing"), "is not a folder"},
	} {
		b, err := objstore.Open(context.Background(), tc.logs)
		if err == nil {
			b.Close()
			t.Errorf("Open(%q) = a bucket, want an error containing %q", tc.logs, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%q) error %q, want it to contain %q", tc.logs, err, tc.want)
		}
	}
}
