// Command salesrank-beam is salesrank's ranker with the counting done by Apache Beam: its
// rank takes the same flags and prints the same summary as "salesrank rank", and adds Beam's
// runner flags (Prism in-process by default; any portable job server such as Flink's or
// Spark's; Google Cloud Dataflow). Run "salesrank-beam rank --help".
//
// The same binary is also the pipeline's worker: a runner that starts it with --worker (a
// Flink or Spark task manager's PROCESS or DOCKER environment, a Dataflow VM) gets Beam's
// SDK harness, not the command line.
package main

import (
	"flag"
	"os"
	"slices"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/salesrank/salesrank/internal/cli"
)

func main() {
	if slices.ContainsFunc(os.Args[1:], isWorkerFlag) {
		flag.Parse()
	}
	beam.Init() // in worker mode this runs the SDK harness and exits
	cli.Main(cli.Program{Name: "salesrank-beam", Commands: []string{"rank", "version"}, Counter: &counter{}})
}

// isWorkerFlag reports whether a is Beam's --worker flag, with which runners start the
// binary as a worker.
func isWorkerFlag(a string) bool {
	switch a {
	case "--worker", "-worker", "--worker=true", "-worker=true":
		return true
	}
	return false
}
