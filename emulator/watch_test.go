package emulator

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// watchStatus reports the status once, before the answer starts, however
// the handler starts it, and keeps Flush and Unwrap working.
func TestWatchStatus(t *testing.T) {
	for _, tc := range []struct {
		name     string
		answer   func(w http.ResponseWriter)
		want     int
		flushed  bool
		wantBody string
	}{
		{"WriteHeader, then Write", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, "x")
		}, http.StatusNotFound, false, "x"},
		{"Write alone", func(w http.ResponseWriter) { w.Write([]byte("x")) }, http.StatusOK, false, "x"},
		{"a second WriteHeader is dropped", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.WriteHeader(http.StatusOK)
		}, http.StatusServiceUnavailable, false, ""},
		{"copied body", func(w http.ResponseWriter) { io.Copy(w, strings.NewReader("xy")) }, http.StatusOK, false, "xy"},
		{"Flush first, through a ResponseController", func(w http.ResponseWriter) {
			if err := http.NewResponseController(w).Flush(); err != nil {
				t.Errorf("Flush: %v", err)
			}
		}, http.StatusOK, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			var seen []int
			w := watchStatus(rec, func(code int) {
				if rec.Body.Len() > 0 || rec.Flushed {
					t.Errorf("status %d reported after the answer started", code)
				}
				seen = append(seen, code)
			})
			tc.answer(w)
			if !slices.Equal(seen, []int{tc.want}) || rec.Code != tc.want || rec.Flushed != tc.flushed || rec.Body.String() != tc.wantBody {
				t.Errorf("reported %v; sent %d %q, flushed %v; want %d %q, flushed %v", seen, rec.Code, rec.Body, rec.Flushed, tc.want, tc.wantBody, tc.flushed)
			}
			if u, ok := w.(interface{ Unwrap() http.ResponseWriter }); !ok || u.Unwrap() != rec {
				t.Errorf("Unwrap does not reach the writer it wraps")
			}
		})
	}
}
