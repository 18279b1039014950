package rpc_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// protocVersion is the protoc the committed code was generated with; its version is written
// into every .pb.go, so another one cannot reproduce the files byte for byte.
const protocVersion = "libprotoc 3.21.12"

// TestGeneratedUpToDate regenerates the code of proto/ into a temporary folder and compares
// it with internal/rpc/gen, so that a .proto edited without running proto/generate.sh fails.
// It needs protoc at protocVersion and skips without it, unless SALESRANK_CHECK_GENERATED=1
// makes it mandatory (for CI, which installs Debian's protobuf-compiler).
func TestGeneratedUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the protoc plugins; skipped in -short mode")
	}
	mandatory := os.Getenv("SALESRANK_CHECK_GENERATED") == "1"
	skip := func(why string) {
		t.Helper()
		if mandatory {
			t.Fatal(why + " (SALESRANK_CHECK_GENERATED=1)")
		}
		t.Skip(why + "; install protobuf-compiler or set SALESRANK_CHECK_GENERATED=1 to require this check")
	}
	out, err := exec.Command("protoc", "--version").Output()
	if err != nil {
		skip("protoc not found")
	}
	if v := strings.TrimSpace(string(out)); v != protocVersion {
		skip("protoc is " + v + ", the code was generated with " + protocVersion)
	}

	dir := t.TempDir()
	cmd := exec.Command("bash", filepath.Join("..", "..", "proto", "generate.sh"), dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("proto/generate.sh: %v\n%s", err, out)
	}
	want := readTree(t, dir)
	got := readTree(t, "gen")
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("gen/%s is missing; run proto/generate.sh", name)
		case !bytes.Equal(g, w):
			t.Errorf("gen/%s is out of date with proto/; run proto/generate.sh", name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("gen/%s is not generated from proto/ any more; run proto/generate.sh", name)
		}
	}
}

// readTree returns the contents of every file under root, by slash-separated relative path.
func readTree(t *testing.T, root string) map[string][]byte {
	t.Helper()
	files := make(map[string][]byte)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
