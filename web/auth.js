// Sign-in for citytwin's pages: OpenID Connect authorization code with PKCE through the
// city's identity provider, with oidc-client-ts (served by citytwin as a global `oidc`).
// The token lives in the tab's session storage; pages send it on their own requests, and
// get a short-lived ticket for the live feed and streams (browsers cannot set headers on
// WebSocket, EventSource or <img>).
export async function startAuth() {
  const res = await fetch('/auth/config');
  const config = res.ok ? await res.json() : { enabled: false };
  const state = { config, user: null, manager: null };
  if (!config.enabled || !window.oidc) return state;
  const home = `${location.origin}${location.pathname}`;
  state.manager = new window.oidc.UserManager({
    authority: config.issuer,
    client_id: config.client_id,
    redirect_uri: home,
    post_logout_redirect_uri: home,
    response_type: 'code',
    scope: config.scopes,
    userStore: new window.oidc.WebStorageStateStore({ store: window.sessionStorage }),
    automaticSilentRenew: false,
  });
  const params = new URLSearchParams(location.search);
  if (params.has('code') && params.has('state')) {
    let back = '';
    try {
      const user = await state.manager.signinRedirectCallback();
      back = user?.state?.back ?? '';
    } catch (e) {
      console.error('sign-in failed', e);
    }
    // drop code and state from the address bar; back to where the page was
    history.replaceState(null, '', `${location.pathname}${back}`);
  }
  const user = await state.manager.getUser();
  state.user = user && !user.expired ? user : null;
  return state;
}

// The Authorization header of the signed-in user, if any.
export function authHeaders(state) {
  return state.user ? { Authorization: `Bearer ${state.user.access_token}` } : {};
}

// A one-use ticket for a stream, or null when signed out.
export async function ticket(state) {
  if (!state.user) return null;
  const res = await fetch('/live/tickets', { method: 'POST', headers: { ...authHeaders(state), 'content-type': 'application/json' }, body: '{}' });
  if (!res.ok) return null;
  return (await res.json()).ticket;
}

// A sign-in/out button in `container`.
export function signInButton(state, container) {
  if (!state.manager) return;
  const box = document.createElement('div');
  box.id = 'auth';
  const who = document.createElement('span');
  const button = document.createElement('button');
  if (state.user) {
    who.textContent = state.user.profile.name ?? state.user.profile.sub;
    button.textContent = '退出 Sign out';
    button.addEventListener('click', async () => {
      await state.manager.removeUser();
      location.reload();
    });
  } else {
    who.textContent = '公众视图 Public view';
    button.textContent = '登录 Sign in';
    // the page's place (query and hash) comes back with the sign-in
    button.addEventListener('click', () => state.manager.signinRedirect({ state: { back: `${location.search}${location.hash}` } }));
  }
  button.id = 'sign-in';
  box.append(who, button);
  container.appendChild(box);
}
