package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// waitFlags are the wait command's flags.
type waitFlags struct {
	admin             string
	timeout, interval time.Duration
}

func newWaitCommand() *cobra.Command {
	var f waitFlags
	cmd := &cobra.Command{
		Use:   "wait [--admin ADDR] [--timeout D]",
		Short: "exit 0 once the broker is ready, 1 if it is not within --timeout",
		Long: `Ask the broker's /readyz until it answers 200, for an app container's entrypoint
(chat-broker wait && exec my-app), an exec probe or init ordering. It exits 0 once
the broker is ready, 1 when --timeout passes first (printing what the broker last
said), and 2 on a usage error.`,
		Example: `  chat-broker wait && exec my-app
  chat-broker wait --admin 127.0.0.1:9090 --timeout 1s   # an exec readiness probe`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runWait(cmd.Context(), f, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringVar(&f.admin, "admin", "127.0.0.1:9090", "`address` of the broker's admin listener")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "give up after this long")
	fs.DurationVar(&f.interval, "interval", 250*time.Millisecond, "time between checks")
	// --admin is the address serve's --admin sets: the same variable.
	setEnv(fs.Lookup("admin"), envName("", "admin"))
	bindEnv(fs, "WAIT_")
	return cmd
}

// runWait blocks until the broker's /readyz answers 200, or fails after
// --timeout with what the broker last said.
func runWait(ctx context.Context, f waitFlags, stdout io.Writer) error {
	switch {
	case f.timeout <= 0:
		return usageError("--timeout %v: want a duration above 0, e.g. 30s", f.timeout)
	case f.interval <= 0:
		return usageError("--interval %v: want a duration above 0, e.g. 250ms", f.interval)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	url := "http://" + f.admin + "/readyz"
	client := &http.Client{Timeout: f.interval + time.Second}
	last := "no answer yet"
	for {
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		if err != nil {
			return usageError("--admin %q: want host:port, e.g. 127.0.0.1:9090", f.admin)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				fmt.Fprintln(stdout, "chat-broker is ready")
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		} else if ctx.Err() == nil {
			last = err.Error()
			if errors.Is(err, syscall.ECONNREFUSED) {
				last = "nothing listens there: is the broker running, and is --admin its admin address?"
			}
		}
		select {
		case <-ctx.Done():
			return noError("wait: %s not ready after %v; last answer: %s", url, f.timeout, last)
		case <-time.After(f.interval):
		}
	}
}
