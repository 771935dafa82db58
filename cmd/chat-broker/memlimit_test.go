package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestContainerMemoryLimit(t *testing.T) {
	cases := []struct {
		name    string
		files   map[string]string
		want    int64
		wantErr string
	}{
		{name: "no cgroup files (not Linux, or cgroup v1)", files: nil, want: 0},
		{
			name:  "own cgroup namespace: the limit at the root",
			files: map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "268435456\n"},
			want:  256 << 20,
		},
		{
			name:  "no limit",
			files: map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "max\n"},
			want:  0,
		},
		{
			name: "host cgroup namespace: the process's own cgroup wins",
			files: map[string]string{
				"proc/self/cgroup": "0::/kubepods/burstable/pod1/ctr\n",
				"sys/fs/cgroup/kubepods/burstable/pod1/ctr/memory.max": "134217728\n",
				"sys/fs/cgroup/memory.max":                             "max\n",
			},
			want: 128 << 20,
		},
		{
			name:  "hybrid v1/v2 lines: only the v2 line counts",
			files: map[string]string{"proc/self/cgroup": "12:memory:/x\n0::/y\n", "sys/fs/cgroup/y/memory.max": "1048576\n"},
			want:  1 << 20,
		},
		{
			name:    "garbage",
			files:   map[string]string{"sys/fs/cgroup/memory.max": "lots\n"},
			wantErr: `"lots" is not a memory limit`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for name, body := range tc.files {
				p := filepath.Join(root, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := containerMemoryLimit(root)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %d, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %d, %v; want %d, nil", got, err, tc.want)
			}
		})
	}
}
