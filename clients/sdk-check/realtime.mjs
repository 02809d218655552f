// The official @directus/sdk's realtime() client against a running Directrix: connect with
// handshake auth, subscribe to `articles`, and see init, create, update and delete for writes
// made through the SDK's REST client. Node 20 has no global WebSocket, so the `ws` package is
// handed to the SDK through its `globals` option. Exits non-zero with a message on any mismatch.
// Usage: node realtime.mjs <base-url> <static-token>
import { createDirectus, createItem, deleteItem, realtime, rest, staticToken, updateItem } from '@directus/sdk';
import WebSocket from 'ws';

const [base, token] = process.argv.slice(2);
const fail = (message) => {
  console.error(`FAIL: ${message}`);
  process.exit(1);
};
const expect = (ok, message) => {
  if (!ok) fail(message);
};

const client = createDirectus(base, { globals: { WebSocket } })
  .with(staticToken(token))
  .with(rest())
  .with(realtime({ authMode: 'handshake', heartbeat: false, reconnect: false }));

await client.connect();
const { subscription, unsubscribe } = await client.subscribe('articles', {
  query: { fields: ['id', 'title'] },
});
const messages = subscription[Symbol.asyncIterator]();
const next = async (what) => {
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error(`no ${what} within 10 s`)), 10000));
  const { value } = await Promise.race([messages.next(), timeout]).catch((e) => fail(e.message));
  return value;
};

const init = await next('init');
expect(init?.event === 'init', `first message is init, got ${JSON.stringify(init)}`);
expect(Array.isArray(init.data), `init carries data, got ${JSON.stringify(init)}`);

const created = await client.request(createItem('articles', { title: 'from the sdk' }));
const create = await next('create');
expect(create.event === 'create', `create event, got ${JSON.stringify(create)}`);
expect(create.data?.[0]?.title === 'from the sdk' && create.data[0].id === created.id, `create data, got ${JSON.stringify(create)}`);

await client.request(updateItem('articles', created.id, { title: 'edited' }));
const update = await next('update');
expect(update.event === 'update' && update.data?.[0]?.title === 'edited', `update event, got ${JSON.stringify(update)}`);

await client.request(deleteItem('articles', created.id));
const removed = await next('delete');
expect(removed.event === 'delete' && removed.data?.map(String).includes(String(created.id)), `delete event, got ${JSON.stringify(removed)}`);

unsubscribe();
client.disconnect();
console.log('realtime ok: init, create, update, delete');
process.exit(0);
