package counting

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime/debug"
	"testing"
	"unsafe"
)

// TestTableOnHugePages checks that a large table is backed by transparent huge pages where
// the kernel gives them on request (its "madvise" setting): once the table is touched, the
// kernel's map of the process shows huge pages over at least half of it.
func TestTableOnHugePages(t *testing.T) {
	// Only "madvise" tells asking from not asking: "always" gives huge pages to every
	// large mapping and "never" to none.
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || !bytes.Contains(mode, []byte("[madvise]")) {
		t.Skipf("transparent huge pages are not given on request here (%q, %v)", bytes.TrimSpace(mode), err)
	}
	// Memory earlier tests touched and freed is still mapped in 4 KiB pages; a table placed
	// there would not get huge pages until the kernel merges them. Give it back first.
	debug.FreeOSMemory()
	var c Counts
	c.growFor(1 << 21) // 4 M slots, 96 MiB
	for i := range c.slots {
		c.slots[i].units = 1
	}
	lo := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(c.slots))))
	size := uint64(len(c.slots)) * uint64(unsafe.Sizeof(slot{}))
	huge := hugeKiBIn(t, lo, lo+size)
	if want := size / 1024 / 2; huge < want {
		t.Errorf("huge pages under the %d KiB table: %d KiB, want at least %d", size/1024, huge, want)
	}
}

// hugeKiBIn sums AnonHugePages over the process's mappings that overlap [lo, hi): an upper
// bound on the huge pages backing that range, exact when the range fills its mappings.
func hugeKiBIn(t *testing.T, lo, hi uint64) uint64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	var total uint64
	overlaps := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var start, end, kib uint64
		if n, _ := fmt.Sscanf(sc.Text(), "%x-%x", &start, &end); n == 2 {
			overlaps = start < hi && lo < end
			continue
		}
		if n, _ := fmt.Sscanf(sc.Text(), "AnonHugePages: %d kB", &kib); n == 1 && overlaps {
			total += kib
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}
