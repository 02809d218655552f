// Drives a running Directrix with the official @directus/sdk (unchanged) and fails on any answer
// that differs from what Directus returns for the same calls.
//
//   ADMIN_EMAIL=… ADMIN_PASSWORD=… node check.mjs <base url> <static admin token>
//
// Expects the collections the Rust test `tests/sdk.rs` creates: authors (id, name) and
// articles (id, title, status, views, author → authors), both empty. Besides the admin's static
// token it logs in (`authentication('json')`) as the admin, and as a reader it creates with a
// role, a policy and one read permission.
import assert from 'node:assert/strict';
import {
  aggregate, authentication, createDirectus, createItem, createItems, createPermission, createPolicy,
  createRole, createUser, customEndpoint, deleteItem, deleteItems, readActivities, readActivity, readItem,
  readItems, readMe, readRevision, readRevisions, readRole, rest, staticToken, updateItem, updateItems,
  updateItemsBatch, updatePolicy, withToken,
} from '@directus/sdk';

const [url, token] = process.argv.slice(2);
const { ADMIN_EMAIL: email, ADMIN_PASSWORD: password } = process.env;
if (!url || !token || !email || !password) {
  console.error('usage: ADMIN_EMAIL=… ADMIN_PASSWORD=… node check.mjs <base url> <token>');
  process.exit(2);
}
const client = createDirectus(url).with(staticToken(token)).with(rest());

/** A failure as one can read it in CI: the server's errors, or both sides of an assertion in full. */
function report(err) {
  if (err?.errors) return JSON.stringify(err.errors);
  if (!(err instanceof assert.AssertionError)) return err;
  const show = (value) => (value instanceof RegExp ? String(value) : JSON.stringify(value));
  const lines = [`  ${err.generatedMessage ? err.operator : err.message.split('\n')[0]}`];
  lines.push(`  actual:   ${show(err.actual)}`, `  expected: ${show(err.expected)}`);
  return `${lines.join('\n')}\n${err.stack.split('\n').find((line) => line.includes('check.mjs')) ?? ''}`;
}

async function step(name, fn) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (err) {
    console.error(`FAIL ${name}`);
    console.error(report(err));
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

// --- Logging in: authentication('json') ---------------------------------------------------------

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const HIDDEN = '**********';

/** Rejects as Directus does: this HTTP status and exactly these `errors`. */
async function rejectsWith(promise, status, errors) {
  await assert.rejects(promise, (err) => {
    assert.deepEqual({ status: err?.response?.status, errors: err?.errors }, { status, errors });
    return true;
  });
}

/** Directus's error envelope for an error with a `reason` (ForbiddenError, InvalidPayloadError). */
const because = (code, message, reason) => [{ message, extensions: { reason, code } }];
const FORBIDDEN = [{ message: "You don't have permission to access this.", extensions: { code: 'FORBIDDEN' } }];
const INVALID_CREDENTIALS = [{ message: 'Invalid user credentials.', extensions: { code: 'INVALID_CREDENTIALS' } }];

/** The claims of a JWT. */
function claims(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
}

/** A storage the test can put tokens back into, as another tab still holding them would. */
function keptStorage() {
  let data = null;
  return { get: () => data, set: (value) => { data = value; } };
}

const adminStore = keptStorage();
const session = createDirectus(url).with(authentication('json', { storage: adminStore })).with(rest());
let loggedIn;
let refreshed;

await step('login({ email, password }) in json mode returns the tokens and the SDK uses them', async () => {
  loggedIn = await session.login({ email, password });
  // Directus's key order; the SDK adds expires_at.
  assert.deepEqual(Object.keys(loggedIn), ['expires', 'refresh_token', 'access_token', 'expires_at']);
  assert.equal(loggedIn.expires, 900000, 'ACCESS_TOKEN_TTL 15m');
  assert.match(loggedIn.refresh_token, /^[\w-]{64}$/, 'a 64-character nanoid');
  const jwt = claims(loggedIn.access_token);
  assert.deepEqual(Object.keys(jwt).sort(), ['admin_access', 'app_access', 'exp', 'iat', 'id', 'iss', 'role']);
  assert.equal(jwt.iss, 'directus');
  assert.equal(jwt.exp - jwt.iat, 900);
  assert.equal(jwt.admin_access, true);
  assert.equal(jwt.app_access, true);
  assert.equal(await session.getToken(), loggedIn.access_token);
  const me = await session.request(readMe({ fields: ['id', 'email'] }));
  assert.deepEqual(me, { id: jwt.id, email });
  assert.deepEqual(await session.request(readItems('authors', { fields: ['name'] })), [{ name: 'Ann' }]);
});

await step('refresh() rotates the refresh token; the old access token stays valid', async () => {
  refreshed = await session.refresh();
  assert.deepEqual(Object.keys(refreshed), ['expires', 'refresh_token', 'access_token', 'expires_at']);
  assert.equal(refreshed.expires, 900000);
  assert.match(refreshed.refresh_token, /^[\w-]{64}$/);
  assert.notEqual(refreshed.refresh_token, loggedIn.refresh_token, 'a new refresh token');
  assert.equal(claims(refreshed.access_token).id, claims(loggedIn.access_token).id);
  assert.equal(await session.getToken(), refreshed.access_token);
  assert.deepEqual(await session.request(readItems('authors', { fields: ['name'] })), [{ name: 'Ann' }]);
  // An access token is a JWT: it works until it expires, whatever happens to the refresh token.
  const withOld = await session.request(withToken(loggedIn.access_token, readItems('authors', { fields: ['name'] })));
  assert.deepEqual(withOld, [{ name: 'Ann' }]);
});

await step('logout() ends the session: refresh() then fails', async () => {
  const kept = { ...adminStore.get() };
  assert.equal(kept.refresh_token, refreshed.refresh_token);
  assert.equal(await session.logout(), undefined);
  assert.equal(adminStore.get().refresh_token, null, 'the SDK forgets its tokens');
  assert.equal(await session.getToken(), null);
  // Holding no refresh token, the SDK sends `{ mode: 'json' }` alone: Directus answers 400.
  const missing = 'The refresh token is required in either the payload or cookie';
  await rejectsWith(session.refresh(), 400, because('INVALID_PAYLOAD', `Invalid payload. ${missing}.`, missing));
  // With the logged-out refresh token put back (another tab still holding it): 401.
  adminStore.set(kept);
  await rejectsWith(session.refresh(), 401, INVALID_CREDENTIALS);
  adminStore.set(null);
  // Logout ends the refresh token, not the stateless access token (json mode has no session claim).
  const withOld = await session.request(withToken(refreshed.access_token, readItems('authors', { fields: ['name'] })));
  assert.deepEqual(withOld, [{ name: 'Ann' }]);
});

await step('a wrong password rejects with INVALID_CREDENTIALS (401)', async () => {
  const stranger = createDirectus(url).with(authentication('json', { storage: keptStorage() })).with(rest());
  await rejectsWith(stranger.login({ email, password: `${password}-wrong` }), 401, INVALID_CREDENTIALS);
  assert.equal(await stranger.getToken(), null);
});

// --- A user with a role, a policy and one read permission ----------------------------------------

const READER_EMAIL = 'reader@example.com';
const READER_PASSWORD = 'reader-password';
const READER_FIELDS = ['id', 'title', 'status', 'author']; // not views
const reader = createDirectus(url).with(authentication('json', { storage: keptStorage() })).with(rest());
const made = {};

await step('as admin, createRole, createPolicy, POST /access and createUser', async () => {
  made.role = await client.request(createRole({ name: 'Reader' }));
  made.policy = await client.request(createPolicy({ name: 'Reading', app_access: true }));
  // The SDK has no command for directus_access.
  const res = await fetch(`${url}/access`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ role: made.role.id, policy: made.policy.id }),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  made.access = body.data;
  made.user = await client.request(createUser({ email: READER_EMAIL, password: READER_PASSWORD, role: made.role.id }));
  await client.request(createItems('articles', [
    { title: 'Out', status: 'published', views: 7, author: 1 },
    { title: 'Kept back', status: 'draft', views: 3 },
  ]));
});

const READ_PUBLISHED = {
  collection: 'articles',
  action: 'read',
  permissions: { status: { _eq: 'published' } },
  fields: READER_FIELDS,
};

await step('createPermission takes fields as an array, as Directus does', async () => {
  // Directus's `cast-csv` special joins an array (or takes a CSV string) and reads it back as
  // an array (api/dist/services/payload.js).
  made.permission = await client.request(createPermission({ policy: made.policy.id, ...READ_PUBLISHED }));
  assert.equal(typeof made.permission.id, 'number');
  assert.deepEqual(made.permission, {
    id: made.permission.id, policy: made.policy.id, ...READ_PUBLISHED, validation: null, presets: null,
  });
});

await step('createRole, POST /access and createUser answer as in Directus', async () => {
  const { role, access, user } = made;
  assert.match(role.id, UUID);
  assert.deepEqual(role, {
    id: role.id, name: 'Reader', icon: 'supervised_user_circle', description: null, parent: null,
    children: [], policies: [], users: [],
  });
  assert.match(access.id, UUID);
  assert.deepEqual(access, { id: access.id, role: role.id, user: null, policy: made.policy.id, sort: null });
  assert.deepEqual(
    await client.request(readRole(role.id, { fields: ['policies', 'users'] })),
    { policies: [access.id], users: [user.id] },
  );
  assert.match(user.id, UUID);
  assert.deepEqual(
    { id: user.id, email: user.email, role: user.role, status: user.status, password: user.password },
    { id: user.id, email: READER_EMAIL, role: role.id, status: 'active', password: HIDDEN },
    'the hash reads as ********** as in Directus',
  );
});

await step('createPolicy returns every field of a Directus 11 policy', async () => {
  // In Directus `users` and `roles` are both O2M aliases over directus_access.policy
  // (system-data relations). Directrix keeps one relation per junction field, so `users` is a
  // known, documented gap: every other field must match exactly.
  const { policy } = made;
  assert.match(policy.id, UUID);
  assert.deepEqual(policy, {
    id: policy.id, name: 'Reading', icon: 'badge', description: null, ip_access: null, enforce_tfa: false,
    admin_access: false, app_access: true, permissions: [], roles: [],
  });
});

await step('createUser returns every field of a Directus 11 user', async () => {
  // directus_users in @directus/system-data 4.3.0 (Directus's own), without its no-data aliases.
  assert.deepEqual(Object.keys(made.user).sort(), [
    'appearance', 'auth_data', 'avatar', 'description', 'email', 'email_notifications', 'external_identifier',
    'first_name', 'id', 'language', 'last_access', 'last_name', 'last_page', 'location', 'password', 'policies',
    'provider', 'role', 'status', 'tags', 'text_direction', 'tfa_secret', 'theme_dark', 'theme_dark_overrides',
    'theme_light', 'theme_light_overrides', 'title', 'token',
  ]);
});

await step('the reader logs in; the token carries their role and no admin access', async () => {
  const data = await reader.login({ email: READER_EMAIL, password: READER_PASSWORD });
  const jwt = claims(data.access_token);
  assert.deepEqual(
    { id: jwt.id, role: jwt.role, app_access: jwt.app_access, admin_access: jwt.admin_access },
    { id: made.user.id, role: made.role.id, app_access: true, admin_access: false },
  );
});

await step('readItems as the reader: permitted rows only, * narrowed to the permitted fields', async () => {
  const out = { id: 4, title: 'Out', status: 'published', author: 1 };
  assert.deepEqual(await reader.request(readItems('articles', { sort: ['id'] })), [out]);
  assert.deepEqual(await reader.request(readItems('articles', { fields: ['*'], filter: { title: { _nnull: true } } })), [out]);
  assert.deepEqual(await reader.request(readItem('articles', 4)), out);
  assert.deepEqual(await reader.request(aggregate('articles', { aggregate: { count: '*' } })), [{ count: '1' }]);
});

await step('the left-out field, asked for or filtered on, and an unpermitted row reject with FORBIDDEN', async () => {
  // api/dist/permissions/modules/process-ast/utils/validate-path/create-error.js
  const reason = 'You don\'t have permission to access field "views" in collection "articles" or it does not exist. Queried in root.';
  await rejectsWith(reader.request(readItems('articles', { fields: ['id', 'views'] })), 403, because('FORBIDDEN', reason, reason));
  await rejectsWith(reader.request(readItems('articles', { filter: { views: { _gt: 0 } } })), 403, because('FORBIDDEN', reason, reason));
  // ItemsService.readOne finding nothing it may read.
  await rejectsWith(reader.request(readItem('articles', 5)), 403, FORBIDDEN);
});

await step('createItem as the reader rejects with FORBIDDEN and writes nothing', async () => {
  // No create permission: processPayload throws createCollectionForbiddenError('', collection).
  const reason = 'You don\'t have permission to access collection "articles" or it does not exist. Queried in root.';
  await rejectsWith(
    reader.request(createItem('articles', { title: 'Sneaked in', status: 'published' })),
    403, because('FORBIDDEN', reason, reason),
  );
  assert.deepEqual(await client.request(aggregate('articles', { aggregate: { count: '*' } })), [{ count: '2' }]);
});

await step('readMe as an app user reads their own user (Directus\'s app-access minimal permissions)', async () => {
  // For a policy with app_access Directus adds `appAccessMinimalPermissions` (@directus/system-data
  // 4.3.0): read directus_users where id = $CURRENT_USER, fields id, email, role, status and more.
  const me = await reader.request(readMe({ fields: ['id', 'email', 'role', 'status'] }));
  assert.deepEqual(me, { id: made.user.id, email: READER_EMAIL, role: made.role.id, status: 'active' });
});

await step('readMe without app access still returns the user\'s id', async () => {
  const policy = await client.request(updatePolicy(made.policy.id, { app_access: false }, { fields: ['id', 'app_access'] }));
  assert.deepEqual(policy, { id: made.policy.id, app_access: false });
  // Directus reads app access per request, not from the token. The reader may now read no
  // directus_users row, and /users/me answers { id } instead of FORBIDDEN (controllers/users.js).
  assert.deepEqual(await reader.request(readMe()), { id: made.user.id });
  assert.deepEqual(await reader.request(readMe({ fields: ['email'] })), { id: made.user.id });
  // Item permissions do not depend on app access.
  assert.deepEqual(await reader.request(readItems('articles', { fields: ['title'] })), [{ title: 'Out' }]);
  await reader.logout();
});

await step('readActivities and readActivity list what the API wrote, in Directus\'s shape', async () => {
  const created = await client.request(createItem('authors', { name: 'Tracked' }));
  const rows = await client.request(readActivities({
    filter: { collection: { _eq: 'authors' }, item: { _eq: String(created.id) } },
    fields: ['id', 'action', 'collection', 'item', 'user', 'ip', 'origin', 'user_agent', 'timestamp'],
  }));
  assert.equal(rows.length, 1);
  const [row] = rows;
  assert.deepEqual(
    { action: row.action, collection: row.collection, item: row.item },
    { action: 'create', collection: 'authors', item: String(created.id) },
  );
  assert.match(row.user, UUID);
  assert.equal(typeof row.timestamp, 'string');
  const one = await client.request(readActivity(row.id, { fields: ['id', 'action'] }));
  assert.deepEqual(one, { id: row.id, action: 'create' });
});

await step('readRevisions, readRevision and /utils/revert restore an earlier version', async () => {
  const made = await client.request(createItem('authors', { name: 'Before' }));
  await client.request(updateItem('authors', made.id, { name: 'After' }));
  const revisions = await client.request(readRevisions({
    filter: { collection: { _eq: 'authors' }, item: { _eq: String(made.id) } },
    sort: ['id'],
    fields: ['id', 'collection', 'item', 'data', 'delta', 'parent', 'activity.action'],
  }));
  assert.deepEqual(revisions.map((r) => [r.activity.action, r.delta]), [
    ['create', { name: 'Before' }],
    ['update', { name: 'After' }],
  ]);
  assert.deepEqual(revisions[1].data, { id: made.id, name: 'After' });
  const first = await client.request(readRevision(revisions[0].id, { fields: ['id', 'data'] }));
  assert.deepEqual(first, { id: revisions[0].id, data: { name: 'Before' } });
  // The SDK has no revert command: Directus's app calls the endpoint itself.
  const answer = await client.request(customEndpoint({ path: `/utils/revert/${first.id}`, method: 'POST' }));
  assert.equal(answer ?? null, null, '204, no body');
  assert.deepEqual(await client.request(readItem('authors', made.id, { fields: ['name'] })), { name: 'Before' });
});

// A failed step may leave a login's refresh timer behind; it would keep Node alive.
session.stopRefreshing();
reader.stopRefreshing();

if (process.exitCode) console.error('sdk check failed');
else console.log('sdk check passed');
