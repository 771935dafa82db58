// ChatCheck: Google's Java client stack against chat-broker, built with
// plain javac from the jars Debian packages (libgoogle-api-client-java,
// libgoogle-http-client-java, libgoogle-oauth-client-java,
// libgoogle-gson-java), which have no google-api-services-chat. The Chat
// client below has the generated HangoutsChat's shape over the same
// google-api-client classes (a root URL, service path "", request classes
// on REST paths such as "v1/{+parent}/messages"), so its requests are the
// ones a Java Chat app sends, with the library's defaults: JSON bodies
// gzipped (Content-Encoding: gzip), PATCH sent by NetHttpTransport as POST
// with X-HTTP-Method-Override, and media sent as a resumable upload by
// MediaHttpUploader, in chunks by PUT. proxy/clients_test.go runs it.
//
// Environment: CHAT_BROKER_URL (the root URL), CHAT_BROKER_TOKEN (the
// caller secret, sent as the bearer token), CHAT_SPACE (default
// spaces/AAAA), CHAT_SUBJECT (the user for the delegated calls: upload,
// a message as the user, search), CHAT_UPLOAD_FILE (the file to upload).
// It prints one line per call for the test to check.

import com.google.api.client.googleapis.media.MediaHttpUploader;
import com.google.api.client.googleapis.services.json.AbstractGoogleJsonClient;
import com.google.api.client.googleapis.services.json.AbstractGoogleJsonClientRequest;
import com.google.api.client.http.AbstractInputStreamContent;
import com.google.api.client.http.FileContent;
import com.google.api.client.http.HttpRequestInitializer;
import com.google.api.client.http.HttpTransport;
import com.google.api.client.http.javanet.NetHttpTransport;
import com.google.api.client.json.GenericJson;
import com.google.api.client.json.JsonFactory;
import com.google.api.client.json.gson.GsonFactory;
import com.google.api.client.util.Key;
import java.io.File;
import java.util.List;

public final class ChatCheck {
  /** The client, as HangoutsChat is generated: root URL, service path "". */
  static final class Chat extends AbstractGoogleJsonClient {
    Chat(Builder builder) {
      super(builder);
    }

    static final class Builder extends AbstractGoogleJsonClient.Builder {
      Builder(HttpTransport transport, JsonFactory jsonFactory, String rootUrl, HttpRequestInitializer init) {
        super(transport, jsonFactory, rootUrl, "", init, false);
        setBatchPath("batch");
      }

      @Override
      public Builder setApplicationName(String name) {
        return (Builder) super.setApplicationName(name);
      }

      @Override
      public Chat build() {
        return new Chat(this);
      }
    }
  }

  /** HangoutsChatRequest: every call is one of these. */
  static class ChatRequest<T> extends AbstractGoogleJsonClientRequest<T> {
    ChatRequest(Chat client, String method, String uriTemplate, Object content, Class<T> responseClass) {
      super(client, method, uriTemplate, content, responseClass);
    }

    /** Acts as a user: the broker's delegation header. */
    ChatRequest<T> as(String subject) {
      getRequestHeaders().set("X-Chat-Broker-Subject", subject);
      return this;
    }
  }

  // The requests, with the generated classes' methods and REST paths.

  /** spaces.messages.create */
  static final class CreateMessage extends ChatRequest<Message> {
    @Key private String parent;

    CreateMessage(Chat c, String parent, Message content) {
      super(c, "POST", "v1/{+parent}/messages", content, Message.class);
      this.parent = parent;
    }
  }

  /** spaces.messages.patch */
  static final class PatchMessage extends ChatRequest<Message> {
    @Key private String name;
    @Key private String updateMask;

    PatchMessage(Chat c, String name, Message content, String updateMask) {
      super(c, "PATCH", "v1/{+name}", content, Message.class);
      this.name = name;
      this.updateMask = updateMask;
    }
  }

  /** spaces.messages.list */
  static final class ListMessages extends ChatRequest<ListMessagesResponse> {
    @Key private String parent;

    ListMessages(Chat c, String parent) {
      super(c, "GET", "v1/{+parent}/messages", null, ListMessagesResponse.class);
      this.parent = parent;
    }
  }

  /** spaces.messages.search */
  static final class SearchMessages extends ChatRequest<SearchMessagesResponse> {
    @Key private String parent;

    SearchMessages(Chat c, String parent, SearchMessagesRequest content) {
      super(c, "POST", "v1/{+parent}/messages:search", content, SearchMessagesResponse.class);
      this.parent = parent;
    }
  }

  /** media.upload, with media: the generated code's upload path. */
  static final class UploadAttachment extends ChatRequest<UploadAttachmentResponse> {
    @Key private String parent;

    UploadAttachment(Chat c, String parent, UploadAttachmentRequest content, AbstractInputStreamContent media) {
      super(c, "POST", "/upload/" + c.getServicePath() + "v1/{+parent}/attachments:upload", content,
          UploadAttachmentResponse.class);
      this.parent = parent;
      initializeMediaUpload(media);
    }
  }

  // The model classes the calls use, fields as Chat names them.

  public static final class Message extends GenericJson {
    @Key public String name;
    @Key public String text;
    @Key public List<Attachment> attachment;
  }

  public static final class Attachment extends GenericJson {
    @Key public AttachmentDataRef attachmentDataRef;
  }

  public static final class AttachmentDataRef extends GenericJson {
    @Key public String resourceName;
    @Key public String attachmentUploadToken;
  }

  public static final class ListMessagesResponse extends GenericJson {
    @Key public List<Message> messages;
    @Key public String nextPageToken;
  }

  public static final class SearchMessagesRequest extends GenericJson {
    @Key public String filter;
  }

  public static final class SearchResult extends GenericJson {
    @Key public Message message;
  }

  public static final class SearchMessagesResponse extends GenericJson {
    @Key public List<SearchResult> results;
  }

  public static final class UploadAttachmentRequest extends GenericJson {
    @Key public String filename;
  }

  public static final class UploadAttachmentResponse extends GenericJson {
    @Key public AttachmentDataRef attachmentDataRef;
  }

  static String env(String name, String fallback) {
    String v = System.getenv(name);
    if (v == null || v.isEmpty()) {
      if (fallback == null) {
        System.err.println("set " + name);
        System.exit(2);
      }
      return fallback;
    }
    return v;
  }

  static Message text(String text) {
    Message m = new Message();
    m.text = text;
    return m;
  }

  public static void main(String[] args) throws Exception {
    String url = env("CHAT_BROKER_URL", null);
    String token = env("CHAT_BROKER_TOKEN", null);
    String space = env("CHAT_SPACE", "spaces/AAAA");
    String subject = env("CHAT_SUBJECT", null);
    File file = new File(env("CHAT_UPLOAD_FILE", null));

    // The caller secret stands in for a Google access token.
    HttpRequestInitializer credential =
        request -> request.getHeaders().setAuthorization("Bearer " + token);
    Chat chat =
        new Chat.Builder(new NetHttpTransport(), GsonFactory.getDefaultInstance(), url.replaceAll("/+$", "") + "/", credential)
            .setApplicationName("chat-broker-java-check")
            .build();

    // As the app: post, edit, list.
    Message created = new CreateMessage(chat, space, text("Hello, world!")).execute();
    System.out.println("created " + created.name);
    Message patched = new PatchMessage(chat, created.name, text("Hello, world! (edited)"), "text").execute();
    System.out.println("patched " + patched.name + " " + patched.text);
    ListMessagesResponse listed = new ListMessages(chat, space).execute();
    System.out.println("listed " + (listed.messages == null ? 0 : listed.messages.size()));

    // As the user: upload a file in chunks, post it, find the post.
    UploadAttachmentRequest meta = new UploadAttachmentRequest();
    meta.filename = file.getName();
    UploadAttachment upload = new UploadAttachment(chat, space, meta, new FileContent("application/octet-stream", file));
    upload.getMediaHttpUploader().setChunkSize(MediaHttpUploader.MINIMUM_CHUNK_SIZE);
    int[] chunks = {0};
    upload.getMediaHttpUploader().setProgressListener(u -> {
      if (u.getUploadState() == MediaHttpUploader.UploadState.MEDIA_IN_PROGRESS
          || u.getUploadState() == MediaHttpUploader.UploadState.MEDIA_COMPLETE) {
        chunks[0]++;
      }
    });
    upload.as(subject);
    UploadAttachmentResponse uploaded = upload.execute();
    System.out.println("uploaded " + uploaded.attachmentDataRef.resourceName + " in " + chunks[0] + " chunks");

    Message report = text("Java report");
    Attachment att = new Attachment();
    att.attachmentDataRef = uploaded.attachmentDataRef;
    report.attachment = List.of(att);
    Message posted = new CreateMessage(chat, space, report).as(subject).execute();
    System.out.println("created-as-user " + posted.name);

    SearchMessagesRequest query = new SearchMessagesRequest();
    query.filter = "report AND space.name = \"" + space + "\"";
    SearchMessagesResponse found = new SearchMessages(chat, "spaces/-", query).as(subject).execute();
    StringBuilder names = new StringBuilder();
    if (found.results != null) {
      for (SearchResult r : found.results) {
        names.append(' ').append(r.message.name);
      }
    }
    System.out.println("searched " + (found.results == null ? 0 : found.results.size()) + names);
  }
}
