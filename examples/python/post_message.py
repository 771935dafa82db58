"""Post "Hello, world!" through chat-broker and list the space's messages.

The official Google client, changed only in endpoint and credential:
CHAT_BROKER_URL is the broker, CHAT_BROKER_TOKEN this app's caller secret.
The broker serves Chat's discovery document pointed at itself, so this
works with every version of google-api-python-client (Debian 12's 1.7
included) and needs no network beyond the broker.
"""
import os

from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build

url = os.environ["CHAT_BROKER_URL"].rstrip("/")
space = os.environ.get("CHAT_SPACE", "spaces/DEMO")
# The caller secret stands in for a Google token; it never expires and
# cannot be refreshed, so the library just sends it.
creds = Credentials(token=os.environ["CHAT_BROKER_TOKEN"])

chat = build("chat", "v1", credentials=creds, cache_discovery=False,
             discoveryServiceUrl=url + "/$discovery/rest?version=v1")

msg = chat.spaces().messages().create(parent=space, body={"text": "Hello, world!"}).execute()
print("created", msg["name"])
listed = chat.spaces().messages().list(parent=space).execute()
print("listed", len(listed.get("messages", [])))
