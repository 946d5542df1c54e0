// Signs a user in to an OpenID Provider the way the viewer does (authorization code with PKCE
// through the login page) and prints the access token: for curl, load scripts and checks.
//   node web/idp/token.mjs <issuer> <user> <password> [redirect-uri] [client-id]
import crypto from 'node:crypto';

const [issuer, user, password, redirect = 'http://127.0.0.1:8080/', clientId = 'citytwin-viewer'] = process.argv.slice(2);
if (!issuer || !user || !password) {
  console.error('usage: node token.mjs <issuer> <user> <password> [redirect-uri] [client-id]');
  process.exit(2);
}
const cookies = new Map();
const remember = (res) => {
  for (const c of res.headers.getSetCookie()) {
    const [pair] = c.split(';');
    const i = pair.indexOf('=');
    cookies.set(pair.slice(0, i), pair.slice(i + 1));
  }
};
const go = async (url, init = {}) => {
  const res = await fetch(new URL(url, issuer), {
    ...init,
    redirect: 'manual',
    headers: { ...(init.headers ?? {}), cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') },
  });
  remember(res);
  return res;
};
const b64url = (b) => Buffer.from(b).toString('base64url');
const verifier = b64url(crypto.randomBytes(32));
const challenge = b64url(crypto.createHash('sha256').update(verifier).digest());
const auth = new URL('/auth', issuer);
for (const [k, v] of Object.entries({ client_id: clientId, response_type: 'code', scope: 'openid profile', redirect_uri: redirect, code_challenge: challenge, code_challenge_method: 'S256', state: 'cli' })) {
  auth.searchParams.set(k, v);
}
let res = await go(auth);
const login = new URL(res.headers.get('location'), issuer);
res = await go(`${login}/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ login: user, password }) });
let next = res.headers.get('location');
if (!next) { console.error('sign-in refused'); process.exit(1); }
while (!next.startsWith(redirect)) {
  res = await go(next);
  next = res.headers.get('location');
  if (!next) { console.error('sign-in stopped at', res.status); process.exit(1); }
}
const code = new URL(next).searchParams.get('code');
res = await go('/token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirect, client_id: clientId, code_verifier: verifier }) });
const token = await res.json();
if (!token.access_token) { console.error('no token:', JSON.stringify(token)); process.exit(1); }
console.log(token.access_token);
