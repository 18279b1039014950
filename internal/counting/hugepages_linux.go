package counting

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugeSlice returns a new slice of n zero values. Slices of a huge page or more are asked to
// be backed by transparent huge pages, where the kernel gives them on request (its usual
// "madvise" setting): a counting table is written all over as soon as it is made, and
// faulting it in 4 KiB at a time cost about half of a 10 M-line run's CPU time, in the
// kernel. The slice is placed just after a huge page boundary; the padding before it (up
// to 2 MiB) is not used, and takes memory only if Go zeroed it when reusing freed heap.
// The advice stays on that range of the heap after the slice is freed. An error (an old
// kernel, THP off) leaves the slice on small pages.
func hugeSlice[T any](n int) []T {
	elem := unsafe.Sizeof(*new(T))
	size := uintptr(n) * elem
	if size < hugePage {
		return make([]T, n)
	}
	all := make([]T, n+int(hugePage/elem)+2)
	base := uintptr(unsafe.Pointer(unsafe.SliceData(all)))
	skip := (hugePage - base%hugePage) % hugePage // bytes to the first boundary
	first := int((skip + elem - 1) / elem)        // the first element that starts on or after it
	advised := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(all)), skip)), size&^(hugePage-1))
	_ = unix.Madvise(advised, unix.MADV_HUGEPAGE) // whole huge pages; the tail stays on small ones
	return all[first : first+n : first+n]
}
