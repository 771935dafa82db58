// Post "Hello, world!" through chat-broker and list the space's messages.
// Google's official Java client (google-api-services-chat), changed only in
// endpoint and credential: CHAT_BROKER_URL is the broker (the root URL),
// CHAT_BROKER_TOKEN this app's caller secret (the bearer token). CHAT_SPACE
// is the space (default spaces/DEMO, the demo's).

import com.google.api.client.http.HttpRequestInitializer;
import com.google.api.client.http.javanet.NetHttpTransport;
import com.google.api.client.json.gson.GsonFactory;
import com.google.api.services.chat.v1.HangoutsChat;
import com.google.api.services.chat.v1.model.ListMessagesResponse;
import com.google.api.services.chat.v1.model.Message;

public final class PostMessage {
  public static void main(String[] args) throws Exception {
    String url = System.getenv("CHAT_BROKER_URL");
    String token = System.getenv("CHAT_BROKER_TOKEN");
    if (url == null || url.isEmpty() || token == null || token.isEmpty()) {
      System.err.println("set CHAT_BROKER_URL and CHAT_BROKER_TOKEN (go run ./cmd/chat-broker demo prints them)");
      System.exit(2);
    }
    String space = System.getenv("CHAT_SPACE");
    if (space == null || space.isEmpty()) {
      space = "spaces/DEMO";
    }

    // The caller secret stands in for a Google access token: every request
    // carries it as the bearer. There is nothing to refresh; the broker
    // mints Google's tokens.
    HttpRequestInitializer credential =
        request -> request.getHeaders().setAuthorization("Bearer " + token);
    HangoutsChat chat =
        new HangoutsChat.Builder(new NetHttpTransport(), GsonFactory.getDefaultInstance(), credential)
            .setRootUrl(url.replaceAll("/+$", "") + "/")
            .setApplicationName("chat-broker-example")
            .build();

    Message created =
        chat.spaces().messages().create(space, new Message().setText("Hello, world!")).execute();
    System.out.println("created " + created.getName());
    ListMessagesResponse listed = chat.spaces().messages().list(space).execute();
    System.out.println("listed " + (listed.getMessages() == null ? 0 : listed.getMessages().size()));
  }
}
