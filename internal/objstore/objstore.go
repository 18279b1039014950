// Package objstore opens the object store that sales logs land in, from a folder or a URL,
// through gocloud.dev/blob, and lists the log objects in it.
//
// # Where logs can be
//
// --logs takes a local folder or a Go CDK URL with one of the schemes file, mem, s3 or gs:
//
//	/var/lib/salesrank/logs                       a local folder; it must exist
//	file:///var/lib/salesrank/logs                the same folder as a URL
//	mem://                                        a new, empty in-memory bucket (tests, demos)
//	s3://sales-logs/                              a whole S3 bucket
//	s3://sales-logs/eu/?region=eu-west-1          only the keys under "eu/"
//	s3://sales-logs?prefix=eu/&region=eu-west-1   the same, with the prefix as a parameter
//	s3://sales-logs/?endpoint=http://minio.internal:9000&use_path_style=true&region=us-east-1&response_checksum_validation=when_required
//	                                              MinIO, Ceph RGW or any S3-compatible store
//	gs://sales-logs/eu/                           a Google Cloud Storage bucket, under "eu/"
//	gs://public-sales-logs?anonymous=true         a public GCS bucket, without credentials
//
// The path of an s3:// or gs:// URL is a folder inside the bucket: "s3://b/eu" and
// "s3://b/eu/" both list only keys that start with "eu/", and keys are then relative to it
// (blob.PrefixedBucket, the same as the Go CDK's own prefix= parameter, which the listing
// sends to the server so nothing outside the folder is fetched). Give the folder either in
// the path or as prefix=, not both.
//
// # S3 and S3-compatible stores
//
// The s3 driver (gocloud.dev/blob/s3blob v0.47.0, AWS SDK v2) accepts these parameters:
//
//   - region: the AWS region, e.g. region=eu-west-1. Without it the SDK takes AWS_REGION,
//     AWS_DEFAULT_REGION or the shared config's region. S3-compatible stores need one too
//     (it is part of the request signature); us-east-1 suits MinIO and Ceph unless they are
//     set up otherwise.
//   - endpoint: the store's base URL, e.g. endpoint=http://127.0.0.1:9000. Its scheme
//     decides between HTTP and HTTPS.
//   - use_path_style=true (alias s3ForcePathStyle=true): address the bucket as
//     http://host/bucket/key rather than http://bucket.host/key. MinIO, Ceph and most
//     self-hosted stores need it.
//   - disable_https=true: plain HTTP to the endpoint the SDK resolves itself; with endpoint=
//     set, write http:// in it instead.
//   - hostname_immutable=true: send requests to the endpoint's host exactly as given.
//   - profile: a named profile of the shared config and credentials files.
//   - anonymous=true: unsigned requests, for public buckets.
//   - role: an IAM role ARN to assume through STS.
//   - dualstack, fips, accelerate (=true), rate_limiter_capacity (a number),
//     request_checksum_calculation and response_checksum_validation (when_supported or
//     when_required), ssetype and kmskeyid (only for writes). Against a store that sends no
//     checksums with objects, response_checksum_validation=when_required stops the SDK
//     logging "Response has no supported checksum" on stderr for every object read.
//
// Credentials come from the standard AWS chain, in order: AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN); the shared files ~/.aws/credentials and
// ~/.aws/config (AWS_PROFILE, or profile=); web identity (AWS_WEB_IDENTITY_TOKEN_FILE, as on
// EKS); the ECS container endpoint; the EC2 instance metadata service (turned off by
// AWS_EC2_METADATA_DISABLED=true). They are looked up when the first request is made, so a
// missing credential shows up as an error from the first listing, not from Open.
//
// # Google Cloud Storage
//
// gs:// uses Application Default Credentials: GOOGLE_APPLICATION_CREDENTIALS (a key file),
// the file left by "gcloud auth application-default login", or the metadata server on
// Google Cloud. Open fails with a message saying so when none is found, rather than going on
// without credentials as the driver's own opener does. anonymous=true reads public buckets
// without credentials; access_id, private_key_path, universe_domain, grpc and zonal are the
// driver's other parameters. STORAGE_EMULATOR_HOST points the driver at an emulator.
package objstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/gcsblob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/blob/s3blob"
	"gocloud.dev/gcp"

	"github.com/salesrank/salesrank/internal/salelog"
)

// schemes are the URL schemes Open accepts, for error messages.
var schemes = []string{fileblob.Scheme, memblob.Scheme, s3blob.Scheme, gcsblob.Scheme}

// Open opens logs as a bucket. A value with a scheme ("file:///data/logs", "mem://",
// "s3://bucket/prefix/?region=…", "gs://bucket/prefix/") is a Go CDK URL; anything else is a
// local folder, which must exist. The package comment lists the forms and their parameters.
func Open(ctx context.Context, logs string) (*blob.Bucket, error) {
	if logs == "" {
		return nil, errors.New("no logs location: set --logs to a folder or a URL such as file:///var/lib/salesrank/logs or s3://bucket/prefix/")
	}
	if strings.Contains(logs, "://") {
		return openURL(ctx, logs)
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

func openURL(ctx context.Context, logs string) (*blob.Bucket, error) {
	u, err := url.Parse(logs)
	if err != nil {
		return nil, fmt.Errorf("open logs: %q is not a valid URL: %w", logs, err)
	}
	switch u.Scheme {
	case fileblob.Scheme, memblob.Scheme:
	case s3blob.Scheme, gcsblob.Scheme:
		if u.Host == "" {
			return nil, fmt.Errorf("open logs %s: no bucket name: write %s://BUCKET/PREFIX/", logs, u.Scheme)
		}
		if err := pathToPrefix(u); err != nil {
			return nil, fmt.Errorf("open logs %s: %w", logs, err)
		}
		if u.Scheme == s3blob.Scheme {
			if ep := u.Query().Get("endpoint"); ep != "" && !strings.HasPrefix(ep, "http://") && !strings.HasPrefix(ep, "https://") {
				return nil, fmt.Errorf("open logs %s: endpoint %q needs a scheme: write endpoint=http://%s or endpoint=https://%s", logs, ep, ep, ep)
			}
		}
	case "http", "https":
		return nil, fmt.Errorf("open logs %s: objects are read through their store's API, not over plain %s: write s3://BUCKET/PREFIX/ (with endpoint=%s://HOST for an S3-compatible store) or gs://BUCKET/PREFIX/", logs, u.Scheme, u.Scheme)
	default:
		return nil, fmt.Errorf("open logs %s: unknown scheme %q: use a folder or a URL with one of the schemes %s", logs, u.Scheme, strings.Join(schemes, ", "))
	}
	b, err := newMux().OpenBucketURL(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("open logs %s: %w", logs, err)
	}
	return b, nil
}

// pathToPrefix moves the path of an s3:// or gs:// URL into its prefix parameter, as a
// folder. The drivers take only the host as the bucket and would silently drop the path,
// listing the whole bucket.
func pathToPrefix(u *url.URL) error {
	p := strings.TrimLeft(u.Path, "/")
	if p == "" {
		return nil
	}
	q := u.Query()
	if q.Has("prefix") {
		return fmt.Errorf("the folder is given twice, as the path %q and as prefix=%q: keep one", u.Path, q.Get("prefix"))
	}
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	q.Set("prefix", p)
	u.Path, u.RawPath, u.RawQuery = "", "", q.Encode()
	return nil
}

// newMux returns a URL mux with the drivers Open supports. It is built per call rather than
// taken from blob.DefaultURLMux: the gs opener is ours (see openGCS), and an s3blob.URLOpener
// keeps the options of the last URL it opened, so each URL gets a new one.
func newMux() *blob.URLMux {
	mux := new(blob.URLMux)
	mux.RegisterBucket(fileblob.Scheme, &fileblob.URLOpener{})
	mux.RegisterBucket(memblob.Scheme, &memblob.URLOpener{})
	mux.RegisterBucket(s3blob.Scheme, openerFunc(func(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
		return (&s3blob.URLOpener{}).OpenBucketURL(ctx, u)
	}))
	mux.RegisterBucket(gcsblob.Scheme, openerFunc(openGCS))
	return mux
}

type openerFunc func(ctx context.Context, u *url.URL) (*blob.Bucket, error)

func (f openerFunc) OpenBucketURL(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	return f(ctx, u)
}

// openGCS opens a gs:// URL. gcsblob's default opener, when it finds no credentials, prints
// a warning on stdout (where "rank --once" writes its JSON summary) and goes on with empty
// ones, so the run fails later with a less helpful error; this one stops at Open and says
// what to set.
func openGCS(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	q := u.Query()
	anon, _ := strconv.ParseBool(q.Get("anonymous"))
	switch {
	case anon || q.Get("access_id") == "-" || os.Getenv("STORAGE_EMULATOR_HOST") != "":
		// No credentials needed; the storage client itself honours STORAGE_EMULATOR_HOST.
		opener := &gcsblob.URLOpener{Client: gcp.NewAnonymousHTTPClient(gcp.DefaultTransport())}
		return opener.OpenBucketURL(ctx, u)
	case q.Has("universe_domain"):
		return blob.DefaultURLMux().OpenBucketURL(ctx, u)
	}
	creds, err := gcp.DefaultCredentials(ctx)
	if err != nil {
		return nil, fmt.Errorf("no Google Cloud credentials: set GOOGLE_APPLICATION_CREDENTIALS to a key file, run \"gcloud auth application-default login\", or run on Google Cloud; for a public bucket add anonymous=true: %w", err)
	}
	client, err := gcp.NewHTTPClient(gcp.DefaultTransport(), creds.TokenSource)
	if err != nil {
		return nil, err
	}
	opener := &gcsblob.URLOpener{Client: client, TokenSource: gcp.CredentialsTokenSource(creds)}
	return opener.OpenBucketURL(ctx, u)
}

// Object is a log object as listed, with what identifies this version of it: enough for a
// manifest to take each object exactly once and to notice one rewritten under the same key.
type Object struct {
	Key     string    // relative to the URL's folder, if it has one
	Size    int64     // bytes as stored
	ModTime time.Time // when the store last wrote it
	// ETag identifies the object's content, from the listing alone (no request per
	// object): the store's ETag where the listing carries one (S3 and S3-compatible
	// stores; GCS, quoted as gcsblob's Attributes quotes it); else the quoted hex MD5 of
	// the content where the driver knows it (mem://, and files written through fileblob);
	// else a weak tag W/"<modtime ns, hex>-<size, hex>" (plain files), which changes when
	// the file is rewritten but would miss a rewrite of the same size within the same
	// nanosecond.
	ETag string
}

// ListObjects returns every log object in the bucket in key order, with its size, time and
// ETag, leaving out markers and temporary files (see salelog.IsLogObject). It makes one
// listing request per 1,000 objects and no other.
func ListObjects(ctx context.Context, b *blob.Bucket) ([]Object, error) {
	var out []Object
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
		out = append(out, Object{Key: o.Key, Size: o.Size, ModTime: o.ModTime, ETag: etag(o)})
	}
}

// Stat returns one object as ListObjects would list it, by the same listing request, so
// that its ETag can be compared with one listed earlier.
func Stat(ctx context.Context, b *blob.Bucket, key string) (Object, error) {
	it := b.List(&blob.ListOptions{Prefix: key})
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return Object{}, fmt.Errorf("stat %s: no such object", key)
		}
		if err != nil {
			return Object{}, fmt.Errorf("stat %s: %w", key, err)
		}
		if o.Key == key && !o.IsDir {
			return Object{Key: o.Key, Size: o.Size, ModTime: o.ModTime, ETag: etag(o)}, nil
		}
	}
}

// etag picks the best version identifier the listing gives; see Object.ETag.
func etag(o *blob.ListObject) string {
	var s3o s3types.Object
	if o.As(&s3o) && s3o.ETag != nil && *s3o.ETag != "" {
		return *s3o.ETag
	}
	var gcso storage.ObjectAttrs
	if o.As(&gcso) && gcso.Etag != "" {
		return `"` + gcso.Etag + `"`
	}
	if len(o.MD5) > 0 {
		return `"` + hex.EncodeToString(o.MD5) + `"`
	}
	return fmt.Sprintf(`W/"%x-%x"`, o.ModTime.UnixNano(), o.Size)
}
