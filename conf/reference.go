package conf

import (
	"fmt"
	"sort"
	"strings"
)

// Reference is the config reference: every setting of the file (and flag of `peer run`)
// with its default, environment variable and meaning, as a Markdown table. It is made
// from the flags themselves, so it cannot go stale; docs/operations.md carries a copy
// that a test keeps equal (`peer conf reference` prints it).
func Reference() string {
	flags := runFlags()
	names := make([]string, 0, len(flags))
	for n := range flags {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("| setting (`--flag`) | default | environment | meaning |\n|---|---|---|---|\n")
	for _, n := range names {
		fl := flags[n]
		def := fl.Default
		switch {
		case n == "name":
			def = "the host name"
		case def == "":
			def = "none"
		}
		env := strings.Join(fl.Envs, ", ")
		help := strings.ReplaceAll(fl.Help, "|", "\\|")
		fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s |\n", n, def, env, help)
	}
	return b.String()
}
