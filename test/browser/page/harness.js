// The page's side of the browser test: E3Kit users of a web app that calls
// groupsync's client API directly (GET /v1/virgil-jwt, POST /v1/get-identities)
// from this page's origin, and the Virgil services at the URL groupsync's dev
// mode gives. One EThree per user, each with its own local storage names.
//
// The test calls window.gs.run(op, args) and gets a JSON string back:
// {"ok":true,"result":...} or {"ok":false,"error":{"name","message","groupErrorCode"}}.
(function () {
  'use strict';

  const cfg = { api: '', virgil: '', owner: '' };
  const users = new Map(); // uid -> { e3, identity, groups: Map(guid -> Group) }

  // authToken stands for the CometChat auth token the app got at login;
  // groupsync checks it with CometChat (dev mode trusts the uid header).
  const authToken = (uid) => 'cometchat-auth-token-of-' + uid;

  async function api(uid, method, path, body) {
    const headers = {
      Authorization: 'Bearer ' + authToken(uid),
      'X-CometChat-UID': uid,
    };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const resp = await fetch(cfg.api + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!resp.ok) {
      throw new Error(method + ' ' + path + ': HTTP ' + resp.status + ' ' + (await resp.text()));
    }
    return resp.json();
  }

  async function userIdentity(asUid, uid) {
    const body = await api(asUid, 'POST', '/v1/get-identities', { uids: [uid], guids: [] });
    return body.userIdentities[0][uid];
  }

  async function groupIdentity(asUid, guid) {
    const body = await api(asUid, 'POST', '/v1/get-identities', { uids: [], guids: [guid] });
    return body.groupIdentities[0][guid];
  }

  function user(uid) {
    const u = users.get(uid);
    if (!u) throw new Error('user ' + uid + ' is not initialized in this page');
    return u;
  }

  function group(uid, guid) {
    const g = user(uid).groups.get(guid);
    if (!g) throw new Error(uid + ' has not loaded group ' + guid);
    return g;
  }

  const ops = {
    version: async () => window.E3kit.EThree.version || null,

    configure: async ({ api: apiURL, virgil, owner }) => {
      cfg.api = apiURL;
      cfg.virgil = virgil;
      cfg.owner = owner;
      return {};
    },

    // init starts the user's EThree; the token comes from groupsync.
    init: async ({ uid }) => {
      let identity = '';
      const getToken = async () => {
        const body = await api(uid, 'GET', '/v1/virgil-jwt');
        identity = body.identity;
        return body.virgilToken;
      };
      const e3 = await window.E3kit.EThree.initialize(getToken, {
        apiUrl: cfg.virgil,
        storageName: 'gs-keys-' + uid,
        groupStorageName: 'gs-groups-' + uid,
      });
      users.set(uid, { e3, identity, groups: new Map() });
      return { identity: e3.identity, hasLocalKey: await e3.hasLocalPrivateKey() };
    },

    register: async ({ uid }) => {
      await user(uid).e3.register();
      return {};
    },

    loadGroup: async ({ uid, guid }) => {
      const u = user(uid);
      const id = await groupIdentity(uid, guid);
      const ownerCard = await u.e3.findUsers(cfg.owner);
      const g = await u.e3.loadGroup(id, ownerCard);
      u.groups.set(guid, g);
      return { groupIdentity: id, participants: g.participants };
    },

    update: async ({ uid, guid }) => {
      const g = group(uid, guid);
      await g.update();
      return { participants: g.participants };
    },

    encrypt: async ({ uid, guid, text }) => group(uid, guid).encrypt(text),

    decrypt: async ({ uid, guid, cipher, sender }) => {
      const u = user(uid);
      const senderCard = await u.e3.findUsers(await userIdentity(uid, sender));
      return group(uid, guid).decrypt(cipher, senderCard);
    },

    backup: async ({ uid, password }) => {
      await user(uid).e3.backupPrivateKey(password);
      return {};
    },

    restore: async ({ uid, password }) => {
      await user(uid).e3.restorePrivateKey(password);
      return {};
    },

    changePassword: async ({ uid, oldPassword, newPassword }) => {
      await user(uid).e3.changePassword(oldPassword, newPassword);
      return {};
    },
  };

  function describe(err) {
    if (!err || typeof err !== 'object') return { name: 'Error', message: String(err) };
    const out = { name: err.name || (err.constructor && err.constructor.name) || 'Error', message: String(err.message || err) };
    if (typeof err.errorCode === 'number') out.groupErrorCode = err.errorCode;
    if (typeof err.status === 'number') out.status = err.status;
    if (typeof err.code === 'number') out.code = err.code;
    return out;
  }

  window.gs = {
    ready: typeof window.E3kit === 'object' && typeof window.E3kit.EThree === 'function',
    loadError: window.gsLoadError || '',
    run: async (op, args) => {
      try {
        const fn = ops[op];
        if (!fn) throw new Error('unknown op ' + op);
        return JSON.stringify({ ok: true, result: await fn(args || {}) });
      } catch (err) {
        return JSON.stringify({ ok: false, error: describe(err) });
      }
    },
  };
})();
