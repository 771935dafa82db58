package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a process this package started: a broker, a baseline or the
// upstream. Its stderr is read line by line for the line that says it is
// listening; the last lines are kept for error messages.
type child struct {
	name string
	cmd  *exec.Cmd

	startedAt time.Time     // just before the process was started
	ready     chan struct{} // closed when the ready line was read
	readyLine string
	readyAt   time.Time

	mu   sync.Mutex
	tail []string

	exited chan struct{} // closed when the process has exited
	err    error
}

// startChild starts path with args; isReady picks the stderr line that
// says the child is listening. stdout goes to out (nil: discarded). The
// child is killed if this process dies (Linux).
func startChild(name, path string, args, env []string, out io.Writer, isReady func(string) bool) (*child, error) {
	c := &child{name: name, ready: make(chan struct{}), exited: make(chan struct{})}
	c.cmd = exec.Command(path, args...)
	c.cmd.Env = env
	c.cmd.Stdout = out
	c.cmd.SysProcAttr = childAttr()
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	c.startedAt = time.Now()
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	lines := make(chan struct{})
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		found := false
		for sc.Scan() {
			line := sc.Text()
			if !found && isReady(line) {
				found = true
				c.readyAt = time.Now()
				c.readyLine = line
				close(c.ready)
			}
			c.mu.Lock()
			if len(c.tail) == 20 {
				c.tail = c.tail[1:]
			}
			c.tail = append(c.tail, line)
			c.mu.Unlock()
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() {
		<-lines // Wait closes the pipe: read it to the end first
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// waitReady waits for the ready line, the child's exit or timeout.
func (c *child) waitReady(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.ready:
		return nil
	case <-c.exited:
		return fmt.Errorf("%s exited before listening (%v): %s", c.name, c.err, c.lastLines())
	case <-t.C:
		return fmt.Errorf("%s not listening after %v: %s", c.name, timeout, c.lastLines())
	}
}

func (c *child) lastLines() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.tail) == 0 {
		return "(no output)"
	}
	return strings.Join(c.tail, "\n")
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stop sends SIGTERM and waits up to 5 s, then kills.
func (c *child) stop() {
	select {
	case <-c.exited:
		return
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-c.exited:
	case <-t.C:
		c.cmd.Process.Kill()
		<-c.exited
	}
}

// cpuTime returns the user+system CPU time pid has used, from
// /proc/<pid>/stat.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bench: malformed /proc stat")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, errors.New("bench: short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("bench: malformed /proc stat times")
	}
	// USER_HZ is 100 on every Linux architecture Go supports.
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// cpuTimeAll is cpuTime summed over pids.
func cpuTimeAll(pids []int) time.Duration {
	var t time.Duration
	for _, p := range pids {
		d, _ := cpuTime(p)
		t += d
	}
	return t
}

// memStatus returns VmRSS and VmHWM of pid in bytes, from
// /proc/<pid>/status.
func memStatus(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("bench: /proc status %s: %w", k, err)
		}
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	return rss, hwm, nil
}

// resetPeak resets VmHWM of pid to its current RSS (Linux 4.0+), so a
// later VmHWM is the peak since now.
func resetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// childrenOf returns the pids whose parent is pid (nginx's workers).
func childrenOf(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, n)
		}
	}
	return out
}
