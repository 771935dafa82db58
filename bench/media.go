package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// mediaTimeout bounds one large transfer.
const mediaTimeout = 2 * time.Minute

// upload sends n bytes as a simple media upload (media.upload,
// uploadType=media) acting as subject, streamed from a generator.
func upload(ctx context.Context, client *http.Client, base, bearer, subject string, n int64) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, mediaTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+uploadPath, &patternReader{left: n})
	if err != nil {
		return 0, err
	}
	req.ContentLength = n
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("X-Chat-Broker-Subject", subject)
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(t0)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("upload: status %d", resp.StatusCode)
	}
	return d, err
}

// download reads an n-byte media download (media.download, alt=media) as
// the app.
func download(ctx context.Context, client *http.Client, base, bearer string, n int64) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, mediaTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+mediaPath(n)+"?alt=media", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	got, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(t0)
	switch {
	case resp.StatusCode != http.StatusOK:
		return 0, fmt.Errorf("download: status %d", resp.StatusCode)
	case err != nil:
		return 0, err
	case got != n:
		return 0, fmt.Errorf("download: got %d bytes, want %d", got, n)
	}
	return d, nil
}

func mbps(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / 1e6 / d.Seconds()
}

// runMedia streams one large upload and one large download through a
// fresh broker process and reports its RSS: before, the peak during the
// transfer (VmHWM, reset just before) and after. The same transfers
// straight to the upstream give the speed to compare with.
func runMedia(ctx context.Context, e *env, r *Report) error {
	b, err := e.startReadyBroker(ctx)
	if err != nil {
		return err
	}
	defer b.stop()
	client := newClient(1)
	defer client.CloseIdleConnections()
	viaBroker, direct := "http://"+b.proxy, "http://"+e.upstream
	s := e.secrets
	// Warm: mint both tokens and open the connections with small bodies,
	// so the measured growth is the transfer's.
	if _, err := upload(ctx, client, viaBroker, s.delegate, alice, 1<<10); err != nil {
		return fmt.Errorf("warm upload: %w", err)
	}
	if _, err := download(ctx, client, viaBroker, s.notifier, 1<<10); err != nil {
		return fmt.Errorf("warm download: %w", err)
	}
	n := e.cfg.MediaBytes
	transfers := []struct {
		row MediaRow
		do  func(base string) (time.Duration, error)
	}{
		{MediaRow{Direction: "upload", Method: "media.upload as " + alice + " (uploadType=media)"},
			func(base string) (time.Duration, error) { return upload(ctx, client, base, s.delegate, alice, n) }},
		{MediaRow{Direction: "download", Method: "media.download as the app (alt=media)"},
			func(base string) (time.Duration, error) { return download(ctx, client, base, s.notifier, n) }},
	}
	for _, t := range transfers {
		e.progress.Printf("media %s %d bytes", t.row.Direction, n)
		row := t.row
		row.Bytes = n
		if d, err := t.do(direct); err != nil {
			row.Error = "direct: " + err.Error()
		} else {
			row.DirectMBps = mbps(n, d)
		}
		pid := b.pid()
		peakNote := ""
		if err := resetPeak(pid); err != nil {
			peakNote = " (VmHWM could not be reset: the peak is since start)"
		}
		row.RSSBefore, _, _ = memStatus(pid)
		d, err := t.do(viaBroker)
		if err != nil {
			row.Error += " broker: " + err.Error()
		} else {
			row.BrokerMBps = mbps(n, d)
		}
		row.RSSAfter, row.PeakRSS, _ = memStatus(pid)
		row.Growth = max(0, row.PeakRSS-row.RSSBefore)
		row.Error += peakNote
		r.Media = append(r.Media, row)
	}
	return nil
}
