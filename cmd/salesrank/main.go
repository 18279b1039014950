// Command salesrank computes each category's best sellers of the past week from raw sales
// logs and serves them over HTTP. Run "salesrank help" for the subcommands; package cli has
// them all.
package main

import "github.com/salesrank/salesrank/internal/cli"

func main() { cli.Main(cli.Program{}) }
