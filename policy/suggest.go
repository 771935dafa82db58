package policy

import (
	"strconv"
	"strings"

	"github.com/agnivade/levenshtein"
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
		d := levenshtein.ComputeDistance(ls, strings.ToLower(c))
		if d > 4 || d*3 > len(c) {
			continue
		}
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	return best, bestD >= 0
}

// didYouMean returns `; did you mean "x"?` for the nearest candidate, or
// otherwise.
func didYouMean(s string, candidates []string, otherwise string) string {
	if c, ok := nearest(s, candidates); ok {
		return "; did you mean " + strconv.Quote(c) + "?"
	}
	return otherwise
}
