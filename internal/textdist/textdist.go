// Package textdist measures how far apart two words are, for "did you mean"
// suggestions (config keys, catalog codes).
package textdist

// Levenshtein returns the edit distance between a and b, in bytes: the
// fewest insertions, deletions and substitutions that turn a into b. It
// does not allocate when b is at most 64 bytes long.
func Levenshtein(a, b string) int {
	var pa, ca [65]int
	prev, cur := pa[:], ca[:]
	if len(b) >= len(pa) {
		prev, cur = make([]int, len(b)+1), make([]int, len(b)+1)
	}
	for j := 0; j <= len(b); j++ {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
