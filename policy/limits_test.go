package policy

import "testing"

func TestEffectiveBurst(t *testing.T) {
	for _, tc := range []struct {
		desc string
		l    Limits
		want int
	}{
		{"no limit", Limits{}, 0},
		{"negative perMinute is no limit", Limits{PerMinute: -5}, 0},
		{"burst without perMinute is no limit", Limits{Burst: 5}, 0},
		{"burst as set", Limits{PerMinute: 600, Burst: 20}, 20},
		{"a burst of 1 as set", Limits{PerMinute: 600, Burst: 1}, 1},
		{"burst above one second's worth", Limits{PerMinute: 60, Burst: 100}, 100},
		{"default: one second's worth", Limits{PerMinute: 600}, 10},
		{"default rounds up", Limits{PerMinute: 61}, 2},
		{"default of exactly one per second", Limits{PerMinute: 60}, 1},
		{"default is at least 1", Limits{PerMinute: 1}, 1},
		{"a negative burst gets the default", Limits{PerMinute: 120, Burst: -3}, 2},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := tc.l.EffectiveBurst(); got != tc.want {
				t.Errorf("%+v.EffectiveBurst() = %d, want %d", tc.l, got, tc.want)
			}
		})
	}
}
