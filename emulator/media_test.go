package emulator_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	chat "google.golang.org/api/chat/v1"
	"google.golang.org/api/googleapi"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
)

// media.upload as Google's Go client does it: one multipart request for
// a small file, a resumable session in 16 MiB chunks above that. The
// emulator gets every byte, in order.
func TestMediaUpload(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{space}})
	bot := v.chat(t, chatapi.ScopeBot)
	for _, tc := range []struct {
		name     string
		size     int
		protocol string
		chunks   int
	}{
		{"small, multipart", 3000, "multipart", 1},
		{"20 MiB, resumable", 20 << 20, "resumable", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := bytes.Repeat([]byte("0123456789abcdef"), tc.size/16)
			sum := sha256.Sum256(data)
			res, err := bot.Media.Upload(space, &chat.UploadAttachmentRequest{Filename: "f.bin"}).
				Media(bytes.NewReader(data), googleapi.ContentType("application/octet-stream")).Do()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(res.AttachmentDataRef.ResourceName, space+"/attachments/") {
				t.Errorf("resource name %q", res.AttachmentDataRef.ResourceName)
			}
			ups := v.emu.Uploads()
			got := ups[len(ups)-1]
			if got.Protocol != tc.protocol || got.Size != int64(len(data)) || got.SHA256 != hex.EncodeToString(sum[:]) || got.Chunks != tc.chunks || got.Space != space {
				t.Errorf("upload %+v, want %s in %d chunks of %d bytes", got, tc.protocol, tc.chunks, len(data))
			}
		})
	}
}

// A session URL is no capability of its own: another identity, or
// another space, does not continue it; nor does a made-up upload_id.
func TestResumableSessionBelongsToItsStarter(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{space, "spaces/BBBB"}, Delegation: true})
	tok := v.token(t, "", chatapi.ScopeBot)
	status, h, _ := v.do(t, "POST", "/upload/v1/"+space+"/attachments:upload?uploadType=resumable", tok, "application/json", `{"filename":"f"}`)
	loc := h.Get("Location")
	if status != 200 || !strings.Contains(loc, "upload_id=") {
		t.Fatalf("start: %d Location %q", status, loc)
	}
	_, rest, _ := strings.Cut(loc, "?")
	for _, tc := range []struct {
		name, path, token string
		want              int
	}{
		{"another identity", "/upload/v1/" + space + "/attachments:upload?" + rest, v.token(t, "alice@example.com", chatapi.ScopeMessagesCreate), 404},
		{"another space", "/upload/v1/spaces/BBBB/attachments:upload?" + rest, tok, 404},
		{"made-up id", "/upload/v1/" + space + "/attachments:upload?uploadType=resumable&upload_id=nope", tok, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("PUT", v.srv.URL+tc.path, strings.NewReader("abc"))
			req.Header.Set("Authorization", "Bearer "+tc.token)
			req.Header.Set("Content-Range", "bytes 0-2/3")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	// The starter finishes it with a PUT, as Java and Python do, after a
	// first chunk answered 308.
	req, _ := http.NewRequest("PUT", loc, strings.NewReader("ab"))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Range", "bytes 0-1/*")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 308 || resp.Header.Get("Range") != "bytes=0-1" {
		t.Fatalf("first chunk: %d Range %q, want 308 bytes=0-1", resp.StatusCode, resp.Header.Get("Range"))
	}
	req, _ = http.NewRequest("PUT", loc, strings.NewReader("c"))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Range", "bytes 2-2/3")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sum := sha256.Sum256([]byte("abc"))
	if ups := v.emu.Uploads(); resp.StatusCode != 200 || len(ups) != 1 || ups[0].SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("last chunk: %d, uploads %+v", resp.StatusCode, ups)
	}
}
