// The analyst workbench: a page of the API's own, talking only to the API
// that served it (the Content-Security-Policy allows nothing else, but the
// token endpoint of the Cognito domain when the host signs in there). Every
// value from the API goes into the page as text, never as markup. The
// token and the purpose live in this tab's sessionStorage only: closing the
// tab signs out, and the purpose is asked once per session and sent with
// every read. How to sign in comes from /ui/config.json: a pasted token
// (agencylink serve), or the Cognito hosted UI with the authorization code
// flow and PKCE (the AWS deployment).
'use strict';

const store = window.sessionStorage;
const main = document.getElementById('main');
// How this host signs in (/ui/config.json); a pasted token until it says.
let config = { sign_in: 'token' };

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'on') {
      for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
    } else if (v !== undefined && v !== null && v !== false) {
      e.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

// An optional part left out is `null`, which replaceChildren would write
// out as the text "null".
function show(...nodes) {
  main.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined));
}

// Counts routes: an answer that arrives after the user has moved on is for
// a view no longer shown, and must not draw over the one that is.
let routed = 0;

function failure(answer) {
  const detail = answer.json && answer.json.detail ? answer.json.detail : 'the server answered ' + answer.status;
  return el('p', { class: 'error', role: 'alert' }, detail);
}

// One API call with the bearer token; the purpose goes with every read.
async function api(method, path, body) {
  // Who the user is decides the routes, so it is asked for before any.
  const asked = path === '/me' ? null : routed;
  const headers = { Authorization: 'Bearer ' + store.getItem('token') };
  let url = path;
  const purpose = store.getItem('purpose') || '';
  if (method === 'GET' && purpose) {
    url += (url.includes('?') ? '&' : '?') + 'purpose=' + encodeURIComponent(purpose);
  }
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(Object.assign({ purpose }, body));
  }
  let resp;
  try {
    resp = await fetch(url, init);
  } catch (e) {
    return { status: 0, json: { detail: 'the server could not be reached' } };
  }
  if (resp.status === 401) {
    signOut(config.sign_in === 'oauth'
      ? 'Your session has ended (it lasts an hour) or was not accepted: sign in again.'
      : 'Your token was not accepted: sign in again.');
    // Never settles: the view that asked must not draw over the sign-in.
    return new Promise(() => {});
  }
  let json = null;
  try {
    json = await resp.json();
  } catch (e) {
    json = null;
  }
  // Never settles for a view the user has left (a slow list answered
  // after a click elsewhere), as for one whose token was refused.
  if (asked !== null && asked !== routed) return new Promise(() => {});
  return { status: resp.status, json };
}

// A download link is fetched here and handed to the browser as a local
// object. On this page's own origin (`agencylink serve`'s /downloads/…) it
// opens only with the user's own token; anywhere else (a presigned S3 link
// on AWS, which carries its own signature) the token is never sent, nor
// any cookie.
async function download(link, name) {
  const own = new URL(link, location.href).origin === location.origin;
  const resp = await fetch(link, own
    ? { headers: { Authorization: 'Bearer ' + store.getItem('token') } }
    : { credentials: 'omit' });
  if (!resp.ok) throw new Error('the download failed (' + resp.status + ')');
  if (name === undefined) return resp.text();
  const blob = await resp.blob();
  const a = el('a', { href: URL.createObjectURL(blob), download: name });
  document.body.append(a);
  a.click();
  a.remove();
  return null;
}

// Where each role starts, and the views each may open: the route table's
// roles, so the page never asks for what the role cannot read.
const HOME = { analyst: 'profiles', agency: 'profiles', auditor: 'audit' };
const VIEWS = {
  analyst: ['profiles', 'profile', 'person', 'network', 'review', 'export'],
  agency: ['profiles', 'profile', 'uploads', 'upload'],
  auditor: ['audit'],
};

// With a message (a refused token), back to this page's sign-in; from the
// button, on the hosted UI, to Cognito's sign-out too, which ends its own
// session so the next sign-in asks for the password again.
function signOut(message) {
  store.clear();
  if (config.sign_in === 'oauth' && message === undefined) {
    location.assign(config.logout + '?' + new URLSearchParams({
      client_id: config.client_id, logout_uri: config.redirect_uri,
    }));
    return;
  }
  // Not through location.hash: its hashchange would route to a second,
  // blank sign-in form over this one and its message.
  history.replaceState(null, '', location.pathname + '#/signin');
  signIn(message);
}

// Who the token belongs to, which decides the views; a refusal other than
// 401 (which signs out) is shown on the sign-in form.
async function whoAmI() {
  const me = await api('GET', '/me');
  if (me.status !== 200) {
    const detail = me.json && me.json.detail ? me.json.detail : 'the server answered ' + me.status;
    store.removeItem('token');
    signIn('Signed in, but refused: ' + detail);
    return;
  }
  store.setItem('role', me.json.role);
  store.setItem('actor', me.json.actor);
  // One route: a changed hash routes through hashchange, so routing here
  // too would ask for the view twice.
  const home = '#/' + HOME[me.json.role];
  if (location.hash === home) route();
  else location.hash = home;
}

function signIn(message) {
  document.getElementById('nav').hidden = true;
  document.getElementById('purpose-line').hidden = true;
  if (config.sign_in === 'oauth') return signInOAuth(message);
  const token = el('input', { id: 'token', type: 'password', autocomplete: 'off', required: true });
  const purpose = el('input', { id: 'purpose', placeholder: 'e.g. Op Kestrel: safeguarding review' });
  const form = el('form', { class: 'stack', id: 'signin' },
    el('h1', {}, 'Sign in'),
    message ? el('p', { class: 'error', role: 'alert' }, message) : null,
    el('label', { for: 'token' }, 'Token (from agencylink user add)'), token,
    el('label', { for: 'purpose' }, 'Purpose of this session (analysts: recorded with every read)'), purpose,
    el('button', { type: 'submit', id: 'signin-go' }, 'Sign in'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    store.setItem('token', token.value.trim());
    store.setItem('purpose', purpose.value.trim());
    await whoAmI();
  });
  show(form);
}

// The purpose is asked here, before leaving for the hosted UI: this tab's
// sessionStorage is still there when Cognito sends the browser back.
function signInOAuth(message) {
  const purpose = el('input', { id: 'purpose', placeholder: 'e.g. Op Kestrel: safeguarding review' });
  const form = el('form', { class: 'stack', id: 'signin' },
    el('h1', {}, 'Sign in'),
    message ? el('p', { class: 'error', role: 'alert' }, message) : null,
    el('label', { for: 'purpose' }, 'Purpose of this session (analysts: recorded with every read)'), purpose,
    el('button', { type: 'submit', id: 'signin-go' }, 'Sign in with your partnership account'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    store.setItem('purpose', purpose.value.trim());
    startOAuth().catch((e) => signIn('Sign-in could not start: ' + e.message));
  });
  show(form);
}

// PKCE (RFC 7636): base64url without padding.
function base64url(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

// 32 random bytes: a 43-character verifier or state.
function randomToken() {
  const a = new Uint8Array(32);
  crypto.getRandomValues(a);
  return base64url(a);
}

async function pkceChallenge(verifier) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

// To the hosted UI. The verifier never leaves this tab until the token
// request; the state ties the answer to this tab's request, so a code
// planted by another site's link is refused.
async function startOAuth() {
  const verifier = randomToken();
  const state = randomToken();
  store.setItem('oauth_verifier', verifier);
  store.setItem('oauth_state', state);
  location.assign(config.authorize + '?' + new URLSearchParams({
    response_type: 'code', client_id: config.client_id, redirect_uri: config.redirect_uri,
    scope: config.scope, state, code_challenge: await pkceChallenge(verifier), code_challenge_method: 'S256',
  }));
}

// Back from the hosted UI with ?code=&state= (or ?error=): the code is
// taken out of the address at once, so it is not left in the history or
// the tab, and exchanged for tokens; null when signed in, else why not.
async function finishOAuth(params) {
  const code = params.get('code');
  const state = params.get('state');
  const error = params.get('error');
  const expected = store.getItem('oauth_state');
  const verifier = store.getItem('oauth_verifier');
  store.removeItem('oauth_state');
  store.removeItem('oauth_verifier');
  history.replaceState(null, '', location.pathname);
  if (error) return 'Sign-in was not completed (' + error.slice(0, 80) + ').';
  if (!code || !state || !expected || !verifier || state !== expected) {
    return 'That sign-in answer was not for this tab: sign in again.';
  }
  let resp;
  try {
    resp = await fetch(config.token, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code', client_id: config.client_id, code,
        redirect_uri: config.redirect_uri, code_verifier: verifier,
      }),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (e) {
    return 'The sign-in service could not be reached.';
  }
  let tokens = null;
  try {
    tokens = await resp.json();
  } catch (e) {
    tokens = null;
  }
  if (!resp.ok || !tokens || typeof tokens.id_token !== 'string') {
    return 'The sign-in was refused (' + resp.status + '): sign in again.';
  }
  // The ID token is the bearer: its aud is this app client, which the
  // JWT authorizer's audience lists, and it carries cognito:groups, the
  // role. (A Cognito access token has no aud, only client_id, which API
  // Gateway falls back to; the ID token's aud is the claim the audience
  // is defined by.) The access and refresh tokens are not kept: the page
  // has no use for them.
  store.setItem('token', tokens.id_token);
  return null;
}

function table(columns, rows, rowClass) {
  return el('table', {},
    el('thead', {}, el('tr', {}, columns.map((c) => el('th', {}, c.label)))),
    el('tbody', {}, rows.map((r) => el('tr', { class: rowClass ? rowClass(r) : null },
      columns.map((c) => el('td', {}, c.cell ? c.cell(r) : cellText(r[c.key])))))));
}

function cellText(v) {
  if (v === null || v === undefined) return '';
  if (Array.isArray(v)) return v.join(', ');
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function idLink(v) {
  if (typeof v !== 'string') return cellText(v);
  if (v.startsWith('n_')) return el('a', { href: '#/network/' + v, class: 'network-link' }, v);
  if (v.startsWith('p_')) return el('a', { href: '#/person/' + v, class: 'person-link' }, v);
  return v;
}

async function profilesView() {
  const answer = await api('GET', '/profiles');
  if (answer.status !== 200) return show(el('h1', {}, 'Profiles'), failure(answer));
  const build = el('button', { id: 'build', type: 'button' }, 'Build a profile now');
  build.addEventListener('click', async () => {
    build.disabled = true;
    const r = await api('POST', '/profiles', {});
    if (r.status !== 202) return main.append(failure(r));
    profilesView();
  });
  const list = answer.json.profiles;
  show(el('h1', {}, 'Problem profiles'), build,
    list.length === 0 ? el('p', { class: 'muted' }, 'No profile is stored yet.') : null,
    el('ul', { id: 'profiles' }, list.map((p) => el('li', {},
      el('a', { href: '#/profile/' + p.id, class: 'profile-link' }, p.from + ' to ' + p.to + ' (' + p.edition + ' edition)')))));
}

async function profileView(id) {
  const answer = await api('GET', '/profiles/' + encodeURIComponent(id));
  if (answer.status !== 200) return show(el('h1', {}, 'Profile'), failure(answer));
  const files = answer.json.files;
  const json = files.find((f) => f.name === 'profile.json');
  const links = el('p', {}, 'Files: ', files.map((f) => {
    const b = el('button', { type: 'button', class: 'file' }, f.name);
    b.addEventListener('click', () => download(f.url, f.name).catch((e) => main.append(el('p', { class: 'error' }, e.message))));
    return b;
  }));
  let profile;
  try {
    profile = JSON.parse(await download(json.url));
  } catch (e) {
    return show(el('h1', {}, 'Profile'), el('p', { class: 'error' }, 'the profile could not be read'));
  }
  const onlyNew = el('input', { type: 'checkbox', id: 'only-new' });
  const tables = el('div', { id: 'tables' });
  const draw = () => tables.replaceChildren(...profile.tables.map((t) => {
    const since = t.columns.findIndex((c) => c.id === 'since_previous');
    const rows = t.rows.filter((r) => !onlyNew.checked || since < 0 || r[since]);
    const cols = t.columns.map((c, i) => ({ label: c.label, cell: (r) => idLink(r[i]) }));
    return el('section', { id: 'table-' + t.id },
      el('h2', {}, t.title), el('p', { class: 'muted' }, t.description || ''),
      table(cols, rows, since < 0 ? null : (r) => (r[since] ? 'new' : null)));
  }));
  onlyNew.addEventListener('change', draw);
  draw();
  show(el('h1', {}, profile.title || 'Problem profile'),
    el('p', {}, profile.period.from + ' to ' + profile.period.to + ', ' + profile.edition + ' edition'), links,
    el('ul', { class: 'headlines' }, (profile.headlines || []).map((h) =>
      el('li', {}, h.label, el('b', {}, cellText(h.value)), h.previous !== undefined ? 'previous: ' + cellText(h.previous) : null))),
    el('div', {}, (profile.summary || []).map((s) => el('p', {}, s))),
    el('label', {}, onlyNew, ' Tracker: only what is new since the previous profile'),
    tables);
}

async function personView(id) {
  const answer = await api('GET', '/people/' + encodeURIComponent(id));
  if (answer.status !== 200) return show(el('h1', {}, 'Person ' + id), failure(answer));
  const t = answer.json;
  show(el('h1', {}, 'Person ' + t.person_id),
    t.resolved_alias ? el('p', { class: 'muted' }, id + ' was merged into this person') : null,
    el('p', {}, 'Agencies: ' + t.agencies.join(', ')),
    el('p', {}, el('a', { href: '#/network/' + t.person_id, id: 'to-network' }, 'Their network')),
    el('h2', {}, 'Timeline across agencies'),
    el('div', { id: 'timeline' }, table([
      { label: 'Date', key: 'date' }, { label: 'Agency', key: 'agency' }, { label: 'Dataset', key: 'dataset' },
      { label: 'Role', key: 'role' }, { label: 'Borough', key: 'borough' }, { label: 'Age band', key: 'age_band' },
      { label: 'Codes', key: 'codes' }], t.timeline)));
}

const KIND_COLOURS = { crime: '#e76f51', intel: '#f4a261', vehicle: '#2a9d8f', phone: '#8d6cab' };

// A force-directed layout: springs along ties, repulsion between nodes,
// a fixed number of steps (bounded: a network answer holds at most 2,000
// people).
function layout(nodes, edges) {
  const n = nodes.length;
  nodes.forEach((d, i) => {
    const a = (2 * Math.PI * i) / n;
    d.x = 300 * Math.cos(a);
    d.y = 300 * Math.sin(a);
  });
  const steps = n > 400 ? 60 : 250;
  for (let s = 0; s < steps; s++) {
    const cool = 1 - s / steps;
    for (let i = 0; i < n; i++) {
      const p = nodes[i];
      p.dx = -p.x * 0.01;
      p.dy = -p.y * 0.01;
      for (let j = 0; j < n; j++) {
        if (i === j) continue;
        const q = nodes[j];
        let dx = p.x - q.x;
        let dy = p.y - q.y;
        const d2 = dx * dx + dy * dy + 0.01;
        p.dx += (dx * 900) / d2;
        p.dy += (dy * 900) / d2;
      }
    }
    for (const [a, b] of edges) {
      const dx = b.x - a.x;
      const dy = b.y - a.y;
      a.dx += dx * 0.05; a.dy += dy * 0.05;
      b.dx -= dx * 0.05; b.dy -= dy * 0.05;
    }
    for (const p of nodes) {
      const m = Math.hypot(p.dx, p.dy) || 1;
      const step = Math.min(m, 30 * cool + 1);
      p.x += (p.dx / m) * step;
      p.y += (p.dy / m) * step;
    }
  }
}

async function networkView(id) {
  const answer = await api('GET', '/people/' + encodeURIComponent(id) + '/network');
  if (answer.status !== 200) return show(el('h1', {}, 'Network ' + id), failure(answer));
  const net = answer.json;
  const people = net.people.map((p) => ({ kind: 'person', id: p.person_id, roles: p.roles, agencies: p.agencies }));
  const byId = new Map(people.map((p) => [p.id, p]));
  const ties = net.ties.map((t) => ({ kind: t.kind, id: t.token, people: t.people }));
  const nodes = people.concat(ties);
  const edges = [];
  for (const t of ties) for (const p of t.people) if (byId.has(p)) edges.push([t, byId.get(p)]);
  layout(nodes, edges);
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('class', 'graph');
  svg.setAttribute('id', 'graph');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'the network: people and what ties them');
  const xs = nodes.map((d) => d.x);
  const ys = nodes.map((d) => d.y);
  let view = [Math.min(...xs) - 40, Math.min(...ys) - 40, Math.max(...xs) - Math.min(...xs) + 80, Math.max(...ys) - Math.min(...ys) + 80];
  const setView = () => svg.setAttribute('viewBox', view.join(' '));
  setView();
  const s = (tag, attrs) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    svg.append(e);
    return e;
  };
  for (const [a, b] of edges) s('line', { x1: a.x, y1: a.y, x2: b.x, y2: b.y, stroke: '#99a', 'stroke-width': 1 });
  for (const t of ties) {
    const r = s('rect', { x: t.x - 6, y: t.y - 6, width: 12, height: 12, fill: KIND_COLOURS[t.kind] || '#888', class: 'tie' });
    const title = document.createElementNS(NS, 'title');
    title.textContent = t.kind + ' ' + t.id;
    r.append(title);
  }
  for (const p of people) {
    const colour = p.roles.includes('suspect') ? '#c1121f' : p.roles.includes('victim') ? '#1d4ed8' : '#555';
    const c = s('circle', { cx: p.x, cy: p.y, r: p.id === net.person_id ? 11 : 8, fill: colour, class: 'person', 'data-person': p.id });
    const title = document.createElementNS(NS, 'title');
    title.textContent = p.id + ' (' + p.roles.join(', ') + ')';
    c.append(title);
    c.addEventListener('click', (ev) => {
      ev.stopPropagation();
      location.hash = '#/person/' + p.id;
    });
    s('text', { x: p.x + 10, y: p.y + 3 }).textContent = p.id.slice(0, 8);
  }
  // Pan by dragging, zoom with the wheel, around the pointer.
  let drag = null;
  svg.addEventListener('pointerdown', (ev) => {
    if (ev.target.classList.contains('person')) return;
    drag = { x: ev.clientX, y: ev.clientY, view: view.slice() };
  });
  svg.addEventListener('pointermove', (ev) => {
    if (!drag) return;
    const scale = view[2] / svg.clientWidth;
    view = [drag.view[0] - (ev.clientX - drag.x) * scale, drag.view[1] - (ev.clientY - drag.y) * scale, view[2], view[3]];
    setView();
  });
  const stop = () => { drag = null; };
  svg.addEventListener('pointerup', stop);
  svg.addEventListener('pointerleave', stop);
  svg.addEventListener('wheel', (ev) => {
    ev.preventDefault();
    const f = ev.deltaY > 0 ? 1.15 : 1 / 1.15;
    const r = svg.getBoundingClientRect();
    const px = view[0] + ((ev.clientX - r.left) / r.width) * view[2];
    const py = view[1] + ((ev.clientY - r.top) / r.height) * view[3];
    view = [px - (px - view[0]) * f, py - (py - view[1]) * f, view[2] * f, view[3] * f];
    setView();
  }, { passive: false });
  show(el('h1', {}, 'Network of ' + net.person_id),
    el('p', { id: 'network-summary' }, people.length + ' people, ' + ties.length + ' shared crimes, reports, vehicles or phones; ' +
      net.suspects + ' suspects, ' + net.victims + ' victims' + (net.group_based ? ': group-based exploitation' : '')),
    net.note ? el('p', { class: 'muted' }, net.note) : null,
    el('p', { class: 'legend' }, el('span', { class: 'k-suspect' }, '\u25CF suspect'), el('span', { class: 'k-victim' }, '\u25CF victim'),
      Object.keys(KIND_COLOURS).map((k) => el('span', { class: 'k-' + k }, '\u25A0 ' + (k === 'intel' ? 'intelligence report' : k)))),
    svg,
    el('h2', {}, 'People'),
    table([{ label: 'Person', cell: (p) => idLink(p.id) }, { label: 'Roles', key: 'roles' }, { label: 'Agencies', key: 'agencies' }], people));
}

async function reviewView() {
  const answer = await api('GET', '/review');
  if (answer.status !== 200) return show(el('h1', {}, 'Clerical review'), failure(answer));
  const items = answer.json.items;
  const decide = (item, decision) => async () => {
    const reason = window.prompt('Why is this pair a ' + decision + '? (kept with the item)');
    if (!reason) return;
    const r = await api('POST', '/review/' + encodeURIComponent(item.id) + '/decision', { decision, reason });
    if (r.status !== 200) return main.append(failure(r));
    reviewView();
  };
  show(el('h1', {}, 'Clerical review'),
    items.length === 0 ? el('p', { class: 'muted' }, 'Nothing waits for review.') : null,
    table([
      { label: 'Pair', key: 'id' }, { label: 'Probability', cell: (i) => (i.probability * 100).toFixed(1) + '%' },
      { label: 'People', cell: (i) => i.people.map(idLink) },
      { label: 'Decide', cell: (i) => ['match', 'non-match', 'unsure'].map((d) => el('button', { type: 'button', on: { click: decide(i, d) } }, d)) }],
    items));
}

async function auditView() {
  const [lineage, access, page] = await Promise.all([
    api('GET', '/lineage/verify'), api('GET', '/access-log/verify'), api('GET', '/access-log?limit=100')]);
  if (lineage.status !== 200) return show(el('h1', {}, 'Audit'), failure(lineage));
  const verdict = (name, v) => el('p', { id: 'verify-' + name },
    name + ': ', v.status === 200 && v.json.ok ? el('span', { class: 'ok' }, 'verified') : el('span', { class: 'error' }, 'NOT verified'),
    v.json && v.json.problem ? ' ' + JSON.stringify(v.json.problem) : '');
  show(el('h1', {}, 'Audit'), verdict('lineage', lineage), verdict('access-log', access),
    el('h2', {}, 'Access log (first 100 entries)'),
    page.status === 200 ? table([
      { label: 'Seq', key: 'seq' }, { label: 'Time', key: 'time' }, { label: 'Reader', key: 'analyst' },
      { label: 'Action', key: 'action' }, { label: 'Target', key: 'target' }, { label: 'Purpose', key: 'purpose' },
      { label: 'Rows', key: 'rows_returned' }], page.json.entries) : failure(page));
}

function exportView() {
  const format = el('select', { id: 'export-format' }, ['csv', 'ndjson', 'graphml', 'i2'].map((f) => el('option', { value: f }, f)));
  const dataset = el('input', { id: 'export-dataset', placeholder: 'every dataset' });
  const out = el('div', { id: 'export-result' });
  const form = el('form', { class: 'stack', id: 'export' },
    el('label', { for: 'export-format' }, 'Format'), format,
    el('label', { for: 'export-dataset' }, 'Dataset (optional)'), dataset,
    el('button', { type: 'submit', id: 'export-go' }, 'Export'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    let q = '/export?format=' + encodeURIComponent(format.value);
    if (dataset.value.trim()) q += '&dataset=' + encodeURIComponent(dataset.value.trim());
    const r = await api('GET', q);
    if (r.status !== 200) return out.replaceChildren(failure(r));
    const name = r.json.key.split('/').pop();
    const get = el('button', { type: 'button', id: 'export-download' }, 'Download ' + name);
    get.addEventListener('click', () => download(r.json.url, name).catch((e) => out.append(el('p', { class: 'error' }, e.message))));
    const rows = r.json.rows !== undefined ? r.json.rows + ' rows' : r.json.nodes + ' nodes, ' + r.json.edges + ' edges';
    out.replaceChildren(el('p', { id: 'export-done' }, rows + '; the link works for 15 minutes. '), get);
  });
  show(el('h1', {}, 'Export'), form, out);
}

async function uploadsView() {
  const answer = await api('GET', '/uploads');
  if (answer.status !== 200) return show(el('h1', {}, 'Uploads'), failure(answer));
  const open = (id) => el('a', { href: '#/upload/' + encodeURIComponent(id), class: 'upload-link' }, id);
  show(el('h1', {}, 'Your uploads'), table([
    { label: 'Upload', key: 'id', cell: (r) => open(r.id) }, { label: 'Dataset', key: 'dataset' },
    { label: 'Status', key: 'status' }, { label: 'When', key: 'created' }], answer.json.uploads));
}

// One upload: its status and counts, and its rejection report (row, field,
// code and message only: the report never holds an identifier's value).
async function uploadView(id) {
  const answer = await api('GET', '/uploads/' + encodeURIComponent(id || ''));
  if (answer.status !== 200) return show(el('h1', {}, 'Upload'), failure(answer));
  const u = answer.json.upload;
  const result = u.result && typeof u.result === 'object'
    ? table([{ label: 'Count', key: 'k' }, { label: 'Value', key: 'v' }],
      Object.entries(u.result).map(([k, v]) => ({ k, v })))
    : null;
  const report = answer.json.report;
  let errors = el('p', { id: 'upload-report' }, 'No rejection report for this upload.');
  if (report && Array.isArray(report.errors)) {
    const total = report.errors_total === undefined ? report.errors.length : report.errors_total;
    errors = el('section', { id: 'upload-report' },
      el('h2', {}, 'Rejected rows'),
      el('p', {}, (total === 1 ? '1 error' : total + ' errors') + (report.errors_truncated ? ', the first ' + report.errors.length + ' shown' : '')),
      table([{ label: 'Row', key: 'row' }, { label: 'Line', key: 'line' }, { label: 'Field', key: 'field' },
        { label: 'Rule', key: 'code' }, { label: 'Message', key: 'message' }], report.errors));
  }
  show(el('h1', {}, 'Upload ' + u.id),
    el('p', { id: 'upload-status' }, u.dataset + ': ' + u.status), result, errors,
    el('p', {}, el('a', { href: '#/uploads' }, 'All uploads')));
}

function route() {
  routed += 1;
  const role = store.getItem('role');
  if (!store.getItem('token') || !VIEWS[role]) return signIn();
  const allowed = VIEWS[role];
  const nav = document.getElementById('nav');
  nav.hidden = false;
  for (const a of nav.querySelectorAll('a')) a.hidden = !allowed.includes(a.getAttribute('href').slice(2));
  document.getElementById('find').hidden = !allowed.includes('person');
  const line = document.getElementById('purpose-line');
  line.hidden = false;
  line.textContent = 'Signed in as ' + store.getItem('actor') + ' (' + role + '). ' +
    (role === 'analyst' ? 'Purpose recorded with every read: ' + (store.getItem('purpose') || '(none given: reads will be refused)') : '');
  let [, view, id] = (location.hash || '').split('/').map(decodeURIComponent);
  if (!allowed.includes(view)) view = HOME[role];
  const views = {
    profiles: profilesView, profile: () => profileView(id), person: () => personView(id),
    network: () => networkView(id), review: reviewView, audit: auditView, export: exportView, uploads: uploadsView,
    upload: () => uploadView(id),
  };
  views[view]();
}

document.getElementById('signout').addEventListener('click', () => signOut());
document.getElementById('find').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const id = document.getElementById('find-id').value.trim();
  if (id) location.hash = (id.startsWith('n_') ? '#/network/' : '#/person/') + id;
});
window.addEventListener('hashchange', route);

async function start() {
  try {
    const resp = await fetch('/ui/config.json', { cache: 'no-store' });
    if (resp.ok) config = await resp.json();
  } catch (e) {
    // The page still signs in with a token, as every host accepts one.
  }
  const params = new URLSearchParams(location.search);
  if (config.sign_in === 'oauth' && (params.has('code') || params.has('error'))) {
    const problem = await finishOAuth(params);
    if (problem) return signIn(problem);
    return whoAmI();
  }
  route();
}

start();
