package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// One JSON audit line per call on stdout, with the fields an auditor
// needs and never the message text.
func TestAuditLog(t *testing.T) {
	dir := t.TempDir()
	keyFile, emuURL := startEmulator(t, dir, "spaces/AAAA")
	policyFile := filepath.Join(dir, "policy.yaml")
	writeFile(t, policyFile, opsPolicy("spaces/AAAA"))
	audit, logs, stop := start(t, "serve", "--key", keyFile, "--policy", policyFile, "--upstream", emuURL, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	listen := logs.waitFor(t, regexp.MustCompile(`"msg":"serving","listen":"([^"]+)"`))[1]

	const text = "the quarterly numbers are 4,711"
	send := func(space string) {
		req, _ := http.NewRequest("POST", "http://"+listen+"/v1/"+space+"/messages", strings.NewReader(`{"text":"`+text+`"}`))
		req.Header.Set("Authorization", "Bearer "+opsSecret)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	send("spaces/AAAA")
	send("spaces/BBBB")
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	var records []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(drain(audit)), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("audit line is not JSON: %v: %s", err, line)
		}
		records = append(records, rec)
	}
	if len(records) != 2 {
		t.Fatalf("%d audit records, want 2 (one per call): %v", len(records), records)
	}
	for _, field := range []string{"time", "caller", "method", "space", "subject", "scopes", "decision", "rule", "reason", "status", "upstream_status", "upstream_request_id", "resource", "hint", "latency_ms"} {
		for i, rec := range records {
			if _, ok := rec[field]; !ok {
				t.Errorf("record %d has no %q: %v", i, field, rec)
			}
		}
	}
	// The two records may land in either order: each is written when its
	// handler returns, which can be after the client has its response.
	allow, deny := records[0], records[1]
	if allow["decision"] == "deny" {
		allow, deny = deny, allow
	}
	if allow["decision"] != "allow" || allow["caller"] != "app" || allow["method"] != "spaces.messages.create" || allow["space"] != "spaces/AAAA" || allow["scopes"] != "chat.bot" || allow["resource"] != "spaces/AAAA/messages" || allow["status"] != float64(200) {
		t.Errorf("allowed call's record: %v", allow)
	}
	if deny["decision"] != "deny" || deny["reason"] != "SPACE_NOT_ALLOWED" || deny["status"] != float64(403) || deny["rule"] == "" {
		t.Errorf("denied call's record: %v", deny)
	}
	if all := drain(audit) + drain(logs); strings.Contains(all, text) {
		t.Error("message text appears in the audit or operational log")
	}
}
