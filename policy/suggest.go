package policy

import (
	"strconv"
	"strings"
)

// nearest returns the candidate closest to s by edit distance, ignoring
// case, when it is close enough to be what the author meant: at most a
// third of the candidate's length and at most 4 edits. Ties go to the
// earlier candidate, so callers pass candidates in a stable order.
func nearest(s string, candidates []string) (string, bool) {
	if len(s) > 200 {
		return "", false // nobody mistypes 200 characters; bound the work
	}
	ls := strings.ToLower(s)
	best, bestD := "", -1
	for _, c := range candidates {
		d := editDistance(ls, strings.ToLower(c))
		if d > 4 || d*3 > len(c) {
			continue
		}
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	return best, bestD >= 0
}

// editDistance is the Levenshtein distance between a and b, in bytes
// (every name it compares is ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
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

// didYouMean returns `; did you mean "x"?` for the nearest candidate, or
// otherwise.
func didYouMean(s string, candidates []string, otherwise string) string {
	if c, ok := nearest(s, candidates); ok {
		return "; did you mean " + strconv.Quote(c) + "?"
	}
	return otherwise
}
