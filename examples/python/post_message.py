"""Post "Hello, world!" through chat-broker and list the space's messages.

The official Google client, changed only in endpoint and credential:
CHAT_BROKER_URL is the broker, CHAT_BROKER_TOKEN this app's caller secret.
"""
import json
import os

from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build, build_from_document

url = os.environ["CHAT_BROKER_URL"].rstrip("/") + "/"
space = os.environ.get("CHAT_SPACE", "spaces/DEMO")
# The caller secret stands in for a Google token; it never expires and
# cannot be refreshed, so the library just sends it.
creds = Credentials(token=os.environ["CHAT_BROKER_TOKEN"])

doc = os.environ.get("CHAT_DISCOVERY_DOC")
if doc:
    # Offline, or google-api-python-client < 2 (Debian 12), which fetches
    # the discovery document from Google: build from a local copy instead.
    with open(doc) as f:
        service = json.load(f)
    service["rootUrl"] = url
    chat = build_from_document(service, credentials=creds)
else:
    chat = build("chat", "v1", client_options={"api_endpoint": url}, credentials=creds)

msg = chat.spaces().messages().create(parent=space, body={"text": "Hello, world!"}).execute()
print("created", msg["name"])
listed = chat.spaces().messages().list(parent=space).execute()
print("listed", len(listed.get("messages", [])))
