package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// runWait blocks until the broker's /readyz answers 200, for an app
// container's entrypoint (chat-broker wait && exec my-app), or fails after
// --timeout with what the broker last said.
func runWait(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wait", flag.ContinueOnError)
	admin := fs.String("admin", "127.0.0.1:9090", "`address` of the broker's admin listener")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	interval := fs.Duration("interval", 250*time.Millisecond, "time between checks")
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("wait: unexpected argument %q", fs.Arg(0))
	}
	if *timeout <= 0 || *interval <= 0 {
		return usageError("--timeout and --interval: want durations > 0")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	url := "http://" + *admin + "/readyz"
	client := &http.Client{Timeout: *interval + time.Second}
	last := "no answer yet"
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
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
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait: %s not ready after %v; last answer: %s", url, *timeout, last)
		case <-time.After(*interval):
		}
	}
}
