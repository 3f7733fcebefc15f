// Package textwrap fills text into lines for the CLI's terminal output
// (keel explain, keel doctor).
package textwrap

import "strings"

// Fill fills text into lines of at most width columns (words longer than a
// line are kept whole), the first prefixed by prefix and the rest indented
// to match. Columns are counted in runes.
func Fill(text, prefix string, width int) string {
	indent := strings.Repeat(" ", len([]rune(prefix)))
	var b strings.Builder
	b.WriteString(prefix)
	col := len([]rune(prefix))
	start := col
	for _, word := range strings.Fields(text) {
		n := len([]rune(word))
		if col > start && col+1+n > width {
			b.WriteString("\n" + indent)
			col = start
		} else if col > start {
			b.WriteByte(' ')
			col++
		}
		b.WriteString(word)
		col += n
	}
	return b.String()
}
