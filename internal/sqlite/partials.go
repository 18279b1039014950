package sqlite

import "github.com/salesrank/salesrank/internal/store"

// PartialStats is store.PartialStats.
type PartialStats = store.PartialStats
