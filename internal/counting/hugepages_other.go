//go:build !linux

package counting

// adviseHugePages does nothing where the kernel has no per-region huge page advice.
func adviseHugePages([]slot) {}
