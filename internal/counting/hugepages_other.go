//go:build !linux

package counting

// hugeSlice returns a new slice of n zero values.
func hugeSlice[T any](n int) []T { return make([]T, n) }
