// Drives a running Directrix with the official @directus/sdk (unchanged) and fails on any answer
// that differs from what Directus returns for the same calls.
//
//   node check.mjs <base url> <static admin token>
//
// Expects the collections the Rust test `tests/sdk.rs` creates: authors (id, name) and
// articles (id, title, status, views, author → authors), both empty.
import assert from 'node:assert/strict';
import {
  aggregate, createDirectus, createItem, createItems, deleteItem, deleteItems, readItem, readItems,
  rest, staticToken, updateItem, updateItems, updateItemsBatch,
} from '@directus/sdk';

const [url, token] = process.argv.slice(2);
if (!url || !token) {
  console.error('usage: node check.mjs <base url> <token>');
  process.exit(2);
}
const client = createDirectus(url).with(staticToken(token)).with(rest());

async function step(name, fn) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (err) {
    console.error(`FAIL ${name}`);
    console.error(err?.errors ? JSON.stringify(err.errors) : err);
    process.exitCode = 1;
  }
}

await step('createItem returns the created item', async () => {
  const ann = await client.request(createItem('authors', { name: 'Ann' }));
  assert.deepEqual(ann, { id: 1, name: 'Ann', articles: [] }, 'an O2M field reads as its keys');
  const article = await client.request(
    createItem('articles', { title: 'Hello', status: 'published', views: 10, author: 1 }),
  );
  assert.deepEqual(article, { id: 1, title: 'Hello', status: 'published', views: 10, author: 1 });
});

await step('createItems creates a batch and honours fields', async () => {
  const created = await client.request(
    createItems('articles', [
      { title: 'Draft one', views: 1 },
      { title: 'Draft two', views: 2, author: 1 },
    ], { fields: ['id', 'title', 'status'] }),
  );
  assert.deepEqual(created, [
    { id: 2, title: 'Draft one', status: 'draft' },
    { id: 3, title: 'Draft two', status: 'draft' },
  ]);
});

await step('readItems with filter, sort, limit and fields', async () => {
  const rows = await client.request(readItems('articles', {
    fields: ['id', 'title'],
    filter: { _and: [{ views: { _gte: 2 } }, { status: { _in: ['draft', 'published'] } }] },
    sort: ['-views'],
    limit: 2,
  }));
  assert.deepEqual(rows, [{ id: 1, title: 'Hello' }, { id: 3, title: 'Draft two' }]);
});

await step('readItems with search, page and a relational field', async () => {
  const rows = await client.request(readItems('articles', {
    fields: ['id', { author: ['name'] }],
    search: 'draft',
    limit: 1,
    page: 2,
  }));
  assert.deepEqual(rows, [{ id: 3, author: { name: 'Ann' } }]);
});

await step('readItems with a relational filter and O2M expansion', async () => {
  const rows = await client.request(readItems('authors', {
    fields: ['name', { articles: ['title'] }],
    filter: { articles: { _some: { status: { _eq: 'published' } } } },
  }));
  assert.deepEqual(rows, [{ name: 'Ann', articles: [{ title: 'Hello' }, { title: 'Draft two' }] }]);
});

await step('readItem returns one item', async () => {
  const item = await client.request(readItem('articles', 2, { fields: ['id', 'views'] }));
  assert.deepEqual(item, { id: 2, views: 1 });
});

await step('readItem of a missing item rejects with FORBIDDEN', async () => {
  await assert.rejects(client.request(readItem('articles', 999)), (err) => {
    assert.equal(err.errors[0].extensions.code, 'FORBIDDEN');
    assert.equal(err.errors[0].message, "You don't have permission to access this.");
    return true;
  });
});

await step('an unknown field rejects with FORBIDDEN naming it', async () => {
  await assert.rejects(client.request(readItems('articles', { fields: ['nope'] })), (err) => {
    assert.equal(err.errors[0].extensions.code, 'FORBIDDEN');
    assert.match(err.errors[0].message, /field "nope" in collection "articles"/);
    return true;
  });
});

await step('updateItem, updateItems and updateItemsBatch', async () => {
  const one = await client.request(updateItem('articles', 2, { views: 5 }, { fields: ['id', 'views'] }));
  assert.deepEqual(one, { id: 2, views: 5 });
  const many = await client.request(updateItems('articles', [2, 3], { status: 'archived' }, { fields: ['id', 'status'] }));
  assert.deepEqual(many, [{ id: 2, status: 'archived' }, { id: 3, status: 'archived' }]);
  const batch = await client.request(updateItemsBatch('articles', [{ id: 2, title: 'Two' }, { id: 3, title: 'Three' }], { fields: ['id', 'title'] }));
  assert.deepEqual(batch, [{ id: 2, title: 'Two' }, { id: 3, title: 'Three' }]);
  const byQuery = await client.request(updateItems('articles', { filter: { status: { _eq: 'archived' } } }, { views: 0 }, { fields: ['id', 'views'] }));
  assert.deepEqual(byQuery, [{ id: 2, views: 0 }, { id: 3, views: 0 }]);
});

await step('aggregate counts and groups as Directus does on Postgres', async () => {
  const count = await client.request(aggregate('articles', { aggregate: { count: '*' } }));
  assert.deepEqual(count, [{ count: '3' }]);
  const grouped = await client.request(aggregate('articles', { aggregate: { sum: 'views' }, groupBy: ['status'] }));
  assert.deepEqual(grouped, [{ status: 'archived', sum: { views: '0' } }, { status: 'published', sum: { views: '10' } }]);
});

await step('meta counts (read over fetch: the SDK drops meta)', async () => {
  const res = await fetch(`${url}/items/articles?meta=*&filter[status][_eq]=archived&limit=1`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  const body = await res.json();
  assert.deepEqual(body.meta, { total_count: 3, filter_count: 2 });
  assert.equal(body.data.length, 1);
});

await step('a required field missing rejects with FAILED_VALIDATION', async () => {
  await assert.rejects(client.request(createItem('authors', {})), (err) => {
    assert.deepEqual(err.errors[0].extensions, { field: 'name', path: [], type: 'required', code: 'FAILED_VALIDATION' });
    return true;
  });
});

await step('deleteItem and deleteItems', async () => {
  assert.equal(await client.request(deleteItem('articles', 3)), null);
  assert.equal(await client.request(deleteItems('articles', [2])), null);
  assert.equal(await client.request(deleteItems('articles', { filter: { id: { _eq: 1 } } })), null);
  assert.deepEqual(await client.request(readItems('articles')), []);
});

if (process.exitCode) console.error('sdk check failed');
else console.log('sdk check passed');
