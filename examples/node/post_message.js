// Post "Hello, world!" through chat-broker and list the space's messages.
// The official Google client, changed only in endpoint and credential:
// CHAT_BROKER_URL is the broker, CHAT_BROKER_TOKEN this app's caller secret.
const {chat} = require('@googleapis/chat');

async function main() {
  const space = process.env.CHAT_SPACE || 'spaces/DEMO';
  const client = chat({
    version: 'v1',
    rootUrl: process.env.CHAT_BROKER_URL.replace(/\/$/, '') + '/',
    headers: {Authorization: `Bearer ${process.env.CHAT_BROKER_TOKEN}`},
  });
  const created = await client.spaces.messages.create({parent: space, requestBody: {text: 'Hello, world!'}});
  console.log('created', created.data.name);
  const listed = await client.spaces.messages.list({parent: space});
  console.log('listed', (listed.data.messages || []).length);
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
