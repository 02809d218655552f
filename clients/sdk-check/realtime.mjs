// Drives Directrix's `/websocket` with the official @directus/sdk's `realtime()` composable
// (unchanged): connects with the handshake auth mode, subscribes to `articles`, writes through
// REST, and fails unless the subscription yields init, create, update and delete with the data
// the writes made.
//
//   node realtime.mjs <base url> <static admin token>
//
// Expects the collection the Rust test in `tests/sdk.rs` creates: articles (id, title,
// status, views), empty. Node 20 has no global WebSocket: the SDK gets the `ws` package's
// through its `globals` option.
import assert from 'node:assert/strict';
import {
  createDirectus, createItem, deleteItem, realtime, rest, staticToken, updateItem,
} from '@directus/sdk';
import { WebSocket as NodeWebSocket } from 'ws';

const [url, token] = process.argv.slice(2);
if (!url || !token) {
  console.error('usage: node realtime.mjs <base url> <token>');
  process.exit(2);
}

// A browser dispatches every message as its own task, so the SDK's subscription generator
// (which listens for one message at a time) re-arms between two messages. `ws` emits the
// messages of one TCP read synchronously unless told not to: tell it, as a browser would behave.
class BrowserLikeWebSocket extends NodeWebSocket {
  constructor(address, protocols) {
    super(address, protocols, { allowSynchronousEvents: false });
  }
}

const client = createDirectus(url, { globals: { WebSocket: BrowserLikeWebSocket } })
  .with(staticToken(token))
  .with(realtime({ authMode: 'handshake' }))
  .with(rest());

/** Fails the run with a message one can read in CI, and stops. */
function fail(what, err) {
  console.error(`FAIL ${what}`);
  if (err?.errors) console.error(JSON.stringify(err.errors));
  else if (err instanceof assert.AssertionError) {
    console.error(`  ${err.message.split('\n')[0]}`);
    console.error(`  actual:   ${JSON.stringify(err.actual)}`);
    console.error(`  expected: ${JSON.stringify(err.expected)}`);
  } else console.error(err);
  console.error('sdk realtime check failed');
  process.exit(1);
}

// Nothing here may hang the test: a bound on a stall, not a measure of speed.
const PATIENCE_MS = 30_000;
const watchdog = setTimeout(() => fail('the check finished', `no progress within ${PATIENCE_MS} ms`), PATIENCE_MS);

let step = 'connect (handshake auth)';
try {
  await client.connect();
  console.log(`ok   ${step}`);

  step = 'subscribe to articles';
  const { subscription, unsubscribe } = await client.subscribe('articles', {
    query: { fields: ['*'] },
  });
  // Collect messages as they come, while the writes go through REST.
  const received = [];
  let wake = () => {};
  const collecting = (async () => {
    for await (const message of subscription) {
      received.push(message);
      wake();
    }
  })();
  /** The `n`th subscription message (0-based), waiting for it. */
  async function nth(n, what) {
    while (received.length <= n) {
      await new Promise((resolve) => {
        wake = resolve;
      });
    }
    const message = received[n];
    assert.equal(message.type, 'subscription', `${what}: a subscription message`);
    return message;
  }

  const init = await nth(0, 'init');
  assert.equal(init.event, 'init');
  assert.deepEqual(init.data, [], 'init: the collection starts empty');
  console.log(`ok   ${step}: init with []`);

  step = 'create through REST → create event';
  const created = await client.request(
    createItem('articles', { title: 'Live', status: 'published', views: 1 }),
  );
  assert.deepEqual(created, { id: 1, title: 'Live', status: 'published', views: 1 });
  const create = await nth(1, 'create');
  assert.equal(create.event, 'create', JSON.stringify(create));
  assert.deepEqual(create.data, [created]);
  console.log(`ok   ${step}`);

  step = 'update through REST → update event';
  const updated = await client.request(updateItem('articles', 1, { title: 'Edited', views: 2 }));
  assert.deepEqual(updated, { id: 1, title: 'Edited', status: 'published', views: 2 });
  const update = await nth(2, 'update');
  assert.equal(update.event, 'update', JSON.stringify(update));
  assert.deepEqual(update.data, [updated]);
  console.log(`ok   ${step}`);

  step = 'delete through REST → delete event';
  await client.request(deleteItem('articles', 1));
  const del = await nth(3, 'delete');
  assert.equal(del.event, 'delete', JSON.stringify(del));
  // The deleted keys. Directus sends them as the request spelled them (`"1"` from the URL);
  // Directrix sends them as the row held them (from the WAL): compare as text.
  assert.deepEqual(del.data.map(String), ['1']);
  console.log(`ok   ${step}`);

  step = 'unsubscribe and disconnect';
  assert.equal(received.length, 4, `no other message: ${JSON.stringify(received.slice(4))}`);
  unsubscribe();
  client.disconnect();
  await collecting;
  console.log(`ok   ${step}`);
} catch (err) {
  fail(step, err);
}
clearTimeout(watchdog);
console.log('sdk realtime check passed');
