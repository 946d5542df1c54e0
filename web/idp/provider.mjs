// A real OpenID Provider (npm oidc-provider, OpenID Certified) for the demo and the tests:
// authorization code with PKCE for the viewer and the big screen, a login page that checks
// the users' passwords, and JWT access tokens for citytwin carrying the claims citytwin maps
// to a principal (department, roles, territory, name). Never a hand-made token server.
//
//   node web/idp/provider.mjs --port 9090 [--issuer URL] [--audience urn:citytwin]
//        [--users web/idp/demo-users.json] [--keys FILE] [--redirect URL]… [--ttl SECONDS]
//        [--exit-with-stdin]
//
// --keys holds the signing keys (a private JWKS); it is made on first use, so instances that
// share the file sign with the same keys. With --exit-with-stdin the process ends when its
// standard input closes, so a test that started it never leaves it behind.
import Provider from 'oidc-provider';
import http from 'node:http';
import fs from 'node:fs';
import crypto from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const many = (name) => args.flatMap((a, i) => (a === `--${name}` ? [args[i + 1]] : []));

const port = Number(opt('port', '9090'));
const host = opt('host', '127.0.0.1');
const issuer = opt('issuer', `http://${host}:${port}`);
const audience = opt('audience', 'urn:citytwin');
const ttl = Number(opt('ttl', '3600'));
const users = JSON.parse(fs.readFileSync(opt('users', path.join(here, 'demo-users.json')), 'utf8'));
const keysFile = opt('keys', path.join(here, '..', 'node_modules', '.citytwin-idp-keys.json'));
const redirects = many('redirect');

function signingKeys() {
  if (fs.existsSync(keysFile)) return JSON.parse(fs.readFileSync(keysFile, 'utf8'));
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' };
  const jwks = { keys: [jwk] };
  fs.writeFileSync(keysFile, JSON.stringify(jwks), { mode: 0o600 });
  return jwks;
}

const bySub = (sub) => Object.values(users).find((u) => u.sub === sub);
const profile = (u) => ({ name: u.name, department: u.department, roles: u.roles, territory: u.territory ?? null });

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'citytwin-viewer',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: redirects.length > 0 ? redirects : ['http://127.0.0.1:8080/', 'http://localhost:8080/'],
    post_logout_redirect_uris: redirects.length > 0 ? redirects : ['http://127.0.0.1:8080/', 'http://localhost:8080/'],
  }],
  jwks: signingKeys(),
  pkce: { required: () => true },
  // the browser exchanges its code from the page's own origin: allow the client's origins
  clientBasedCORS: (ctx, origin, client) => client.redirectUris.some((u) => new URL(u).origin === origin),
  claims: { openid: ['sub'], profile: ['name', 'department', 'roles', 'territory'] },
  findAccount: async (ctx, sub) => {
    const u = bySub(sub);
    if (!u) return undefined;
    return { accountId: sub, claims: async () => ({ sub, ...profile(u) }) };
  },
  extraTokenClaims: async (ctx, token) => {
    const u = token.accountId ? bySub(token.accountId) : undefined;
    return u ? profile(u) : undefined;
  },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => {
        if (resource !== audience) throw new Error(`unknown resource ${resource}`);
        return { scope: 'openid profile', audience, accessTokenFormat: 'jwt', accessTokenTTL: ttl, jwt: { sign: { alg: 'RS256' } } };
      },
    },
  },
  // citytwin is the city's own first-party application: no consent screen
  loadExistingGrant: async (ctx) => {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const g = await ctx.oidc.provider.Grant.find(grantId);
      if (g) return g;
    }
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid profile');
    grant.addResourceScope(audience, 'openid profile');
    await grant.save();
    return grant;
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: [crypto.randomBytes(16).toString('hex')] },
  ttl: { AccessToken: ttl, IdToken: ttl, Session: 8 * 3600, Interaction: 600, Grant: 8 * 3600 },
});
provider.proxy = true;

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));

function loginPage(uid, error) {
  return `<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>南京城市运行 · 统一身份认证</title>
<style>body{font-family:sans-serif;background:#0b1a2e;color:#e6edf6;display:flex;justify-content:center;padding-top:12vh}
form{background:#14273f;padding:2em;border-radius:8px;min-width:18em}input{display:block;width:100%;margin:.4em 0 1em;padding:.5em}
button{padding:.6em 1.4em}p.error{color:#ff8a80}</style></head><body>
<form method="post" action="/interaction/${escape(uid)}/login"><h1>统一身份认证 Sign in</h1>
${error ? `<p class="error">${escape(error)}</p>` : ''}
<label>用户名 User <input name="login" autocomplete="username" autofocus required></label>
<label>密码 Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">登录 Sign in</button></form></body></html>`;
}

async function formBody(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 10000) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

async function interaction(req, res) {
  const m = req.url.match(/^\/interaction\/([\w-]+)(\/login)?$/);
  if (!m) return false;
  try {
    const details = await provider.interactionDetails(req, res);
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(loginPage(details.uid));
      return true;
    }
    if (req.method === 'POST' && m[2]) {
      const form = await formBody(req);
      const u = users[form.get('login') ?? ''];
      const given = Buffer.from(form.get('password') ?? '');
      const want = Buffer.from(u?.password ?? '');
      if (!u || given.length !== want.length || !crypto.timingSafeEqual(given, want)) {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        res.end(loginPage(details.uid, '用户名或密码错误 wrong user or password'));
        return true;
      }
      await provider.interactionFinished(req, res, { login: { accountId: u.sub } }, { mergeWithLastSubmission: false });
      return true;
    }
  } catch (e) {
    res.writeHead(400, { 'content-type': 'text/plain' });
    res.end(`sign-in failed: ${e.message}`);
    return true;
  }
  return false;
}

const callback = provider.callback();
const server = http.createServer(async (req, res) => {
  if (req.url.startsWith('/interaction/') && (await interaction(req, res))) return;
  callback(req, res);
});
server.listen(port, host, () => {
  console.log(JSON.stringify({ issuer, port, audience }));
});
if (args.includes('--exit-with-stdin')) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
