'use strict';
// E3Kit driver: runs the official @virgilsecurity/e3kit-node client for many
// simulated users in one process, for groupsync's interop tests.
//
// Run: node --no-experimental-fetch driver.js
//
// Protocol: one JSON object per line on stdin, one JSON answer per line on
// stdout (nothing else is written to stdout; library logs go to stderr).
//
//   request:  {"id": 7, "op": "loadGroup", "user": "alice", ...arguments}
//   answer:   {"id": 7, "ok": true, "result": {...}}
//         or  {"id": 7, "ok": false, "error": {"name", "message",
//              "groupErrorCode"?, "httpStatus"?, "code"?, "identities"?}}
//
// Commands of one user run one after another, in the order received;
// commands of different users run concurrently. Answers carry the request id
// and may come out of order across users.
//
// Operations (arguments after "op"):
//   configure   apiUrl, storageDir, [app {appId, appKeyId, appKey, ttlSeconds}],
//               [tokenUrl, tokenHeaders]          once, before anything else
//   init        user, [identity], [jwt], [tokenUrl], [tokenHeaders]
//               -> {identity}; optional: any user op initializes the user
//   register    user, [privateKey (PKCS#8 base64)]          -> {identity}
//   findUsers   user, identities[]   -> {cards: [{id, identity, previousCardId, hasPreviousCard}]}
//   createGroup user, groupId, participants[]               -> {participants}
//   loadGroup   user, groupId, owner                        -> {participants}
//   getGroup    user, groupId                               -> {found, participants}
//   update      user, groupId                               -> {participants}
//   encrypt     user, groupId, text                         -> {cipher}
//   decrypt     user, groupId, cipher, sender               -> {text}
//   add         user, groupId, identities[]                 -> {participants}
//   remove      user, groupId, identities[]                 -> {participants}
//   reAdd       user, groupId, identity                     -> {participants}
//   deleteGroup user, groupId                               -> {}
//   cleanup, rotatePrivateKey, unregister, hasLocalPrivateKey   user
//   backupPrivateKey      user, password, [keyName]                   -> {}
//   restorePrivateKey     user, password, [keyName]                   -> {}
//   changePassword        user, oldPassword, newPassword, [keyName]   -> {}
//   resetPrivateKeyBackup user, [keyName]                             -> {}
//               (without keyName the Keyknox v1 backup; with it, E3Kit's
//               Keyknox v2 backup under root "e3kit", path "backup")
//   ping                                                    -> {e3kit, node}
//   exit                                                    answers, then exits
//
// Tokens for a user come from, in this order: the user's "jwt"; a GET of
// tokenUrl (user's or configured) with tokenHeaders and X-CometChat-UID:
// <user>, answering {"virgilToken"|"virgil_jwt"|"token": "<jwt>"}; or the
// configured app credentials through virgil-sdk's JwtGenerator.

console.log = console.error; // keep stdout for the protocol
console.info = console.error;
console.warn = console.error;
console.debug = console.error;

const fs = require('fs');
const path = require('path');
const http = require('http');
const https = require('https');
const readline = require('readline');

const { EThree } = require('@virgilsecurity/e3kit-node');
const { initCrypto, VirgilCrypto } = require('virgil-crypto');
const { JwtGenerator } = require('virgil-sdk');
const { VirgilAccessTokenSigner } = require('@virgilsecurity/sdk-crypto');

const config = { apiUrl: '', storageDir: '', tokenUrl: '', tokenHeaders: {}, generator: null };
const users = new Map(); // user -> {e3, identity, groups: Map, opts}
const queues = new Map(); // user -> promise chain

function send(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function describe(err) {
  if (err === null || typeof err !== 'object') {
    return { name: 'Error', message: String(err) };
  }
  const out = { name: err.name || 'Error', message: String(err.message || err) };
  if (err.name === 'GroupError' && typeof err.errorCode === 'number') out.groupErrorCode = err.errorCode;
  if (err.name === 'VirgilHttpError') {
    out.httpStatus = err.httpStatus;
    if (err.errorCode !== undefined) out.code = err.errorCode;
  }
  if (err.name === 'KeyknoxClientError') {
    if (err.status !== undefined) out.httpStatus = err.status;
    if (err.code !== undefined) out.code = err.code;
  }
  if (Array.isArray(err.identities)) out.identities = err.identities;
  return out;
}

function httpGetJSON(url, headers) {
  return new Promise((resolve, reject) => {
    const mod = url.startsWith('https:') ? https : http;
    const req = mod.get(url, { headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode < 200 || res.statusCode > 299) {
          reject(new Error(`token endpoint answered ${res.statusCode}: ${text.slice(0, 200)}`));
          return;
        }
        try {
          resolve(JSON.parse(text));
        } catch (e) {
          reject(new Error('token endpoint answered non-JSON'));
        }
      });
    });
    req.on('error', reject);
    req.setTimeout(30000, () => req.destroy(new Error('token endpoint timed out')));
  });
}

function tokenFunction(user, opts) {
  if (opts.jwt) return () => opts.jwt;
  const url = opts.tokenUrl || config.tokenUrl;
  if (url) {
    return async () => {
      const headers = { ...config.tokenHeaders, ...(opts.tokenHeaders || {}), 'X-CometChat-UID': user };
      const body = await httpGetJSON(url, headers);
      const tok = body.virgilToken || body.virgil_jwt || body.token || body.jwt;
      if (typeof tok !== 'string' || tok === '') throw new Error('token endpoint answered no token');
      return tok;
    };
  }
  if (config.generator) {
    const identity = opts.identity || user;
    return () => config.generator.generateToken(identity).toString();
  }
  throw new Error(`no token source for user ${user}: give jwt, tokenUrl or app credentials`);
}

async function configure(cmd) {
  if (!cmd.apiUrl || !cmd.storageDir) throw new Error('configure needs apiUrl and storageDir');
  config.apiUrl = String(cmd.apiUrl).replace(/\/+$/, '');
  config.storageDir = cmd.storageDir;
  config.tokenUrl = cmd.tokenUrl || '';
  config.tokenHeaders = cmd.tokenHeaders || {};
  await initCrypto();
  if (cmd.app) {
    const crypto = new VirgilCrypto();
    config.generator = new JwtGenerator({
      appId: cmd.app.appId,
      apiKeyId: cmd.app.appKeyId,
      apiKey: crypto.importPrivateKey({ value: cmd.app.appKey, encoding: 'base64' }),
      accessTokenSigner: new VirgilAccessTokenSigner(crypto),
      millisecondsToLive: (cmd.app.ttlSeconds || 1200) * 1000,
    });
  }
  return {};
}

async function initUser(user, cmd) {
  if (users.has(user)) return users.get(user);
  if (!config.apiUrl) throw new Error('configure first');
  const safe = user.replace(/[^A-Za-z0-9._-]/g, '_');
  const dir = path.join(config.storageDir, safe);
  fs.mkdirSync(dir, { recursive: true });
  const opts = { jwt: cmd.jwt, tokenUrl: cmd.tokenUrl, tokenHeaders: cmd.tokenHeaders, identity: cmd.identity };
  const e3 = await EThree.initialize(tokenFunction(user, opts), {
    apiUrl: cmd.apiUrl || config.apiUrl,
    storageName: path.join(dir, 'keys'),
    groupStorageName: path.join(dir, 'groups'),
  });
  const u = { e3, identity: e3.identity, groups: new Map() };
  users.set(user, u);
  return u;
}

function cardInfo(card) {
  return {
    id: card.id,
    identity: card.identity,
    previousCardId: card.previousCardId || '',
    hasPreviousCard: Boolean(card.previousCard),
  };
}

async function cardOf(u, identity) {
  return u.e3.findUsers(String(identity));
}

async function groupOf(u, groupId) {
  let g = u.groups.get(groupId);
  if (!g) {
    g = await u.e3.getGroup(groupId);
    if (!g) {
      const err = new Error(`no local group ${groupId}`);
      err.name = 'LocalGroupNotFound';
      throw err;
    }
    u.groups.set(groupId, g);
  }
  return g;
}

function requireArray(v, name) {
  if (!Array.isArray(v)) throw new TypeError(`${name} must be an array`);
  return v.map(String);
}

const ops = {
  async init(u) {
    return { identity: u.identity };
  },
  async register(u, cmd) {
    if (cmd.privateKey) {
      const c = u.e3.virgilCrypto;
      const privateKey = c.importPrivateKey({ value: cmd.privateKey, encoding: 'base64' });
      const publicKey = c.extractPublicKey(privateKey);
      await u.e3.register({ privateKey, publicKey });
    } else {
      await u.e3.register();
    }
    return { identity: u.identity };
  },
  async findUsers(u, cmd) {
    const ids = requireArray(cmd.identities, 'identities');
    const found = await u.e3.findUsers(ids);
    return { cards: ids.map((id) => cardInfo(found[id])) };
  },
  async createGroup(u, cmd) {
    const ids = requireArray(cmd.participants || [], 'participants');
    const found = ids.length ? await u.e3.findUsers(ids) : undefined;
    const g = await u.e3.createGroup(cmd.groupId, found);
    u.groups.set(cmd.groupId, g);
    return { participants: g.participants };
  },
  async loadGroup(u, cmd) {
    const ownerCard = await cardOf(u, cmd.owner);
    const g = await u.e3.loadGroup(cmd.groupId, ownerCard);
    u.groups.set(cmd.groupId, g);
    return { participants: g.participants };
  },
  async getGroup(u, cmd) {
    const g = await u.e3.getGroup(cmd.groupId);
    if (!g) return { found: false, participants: [] };
    return { found: true, participants: g.participants };
  },
  async update(u, cmd) {
    const g = await groupOf(u, cmd.groupId);
    await g.update();
    return { participants: g.participants };
  },
  async encrypt(u, cmd) {
    const g = await groupOf(u, cmd.groupId);
    return { cipher: await g.encrypt(String(cmd.text)) };
  },
  async decrypt(u, cmd) {
    const g = await groupOf(u, cmd.groupId);
    const sender = await cardOf(u, cmd.sender);
    return { text: await g.decrypt(String(cmd.cipher), sender) };
  },
  async add(u, cmd) {
    const g = await groupOf(u, cmd.groupId);
    await g.add(await u.e3.findUsers(requireArray(cmd.identities, 'identities')));
    return { participants: g.participants };
  },
  async remove(u, cmd) {
    const g = await groupOf(u, cmd.groupId);
    await g.remove(await u.e3.findUsers(requireArray(cmd.identities, 'identities')));
    return { participants: g.participants };
  },
  async reAdd(u, cmd) {
    const g = await groupOf(u, cmd.groupId);
    const card = await cardOf(u, cmd.identity);
    await g.reAdd(card);
    return { participants: g.participants, card: cardInfo(card) };
  },
  async deleteGroup(u, cmd) {
    await u.e3.deleteGroup(cmd.groupId);
    u.groups.delete(cmd.groupId);
    return {};
  },
  async cleanup(u) {
    await u.e3.cleanup();
    return {};
  },
  async rotatePrivateKey(u) {
    await u.e3.rotatePrivateKey();
    return {};
  },
  async unregister(u) {
    await u.e3.unregister();
    return {};
  },
  async hasLocalPrivateKey(u) {
    return { has: await u.e3.hasLocalPrivateKey() };
  },
  async backupPrivateKey(u, cmd) {
    await u.e3.backupPrivateKey(String(cmd.password), cmd.keyName || undefined);
    return {};
  },
  async restorePrivateKey(u, cmd) {
    await u.e3.restorePrivateKey(String(cmd.password), cmd.keyName || undefined);
    return {};
  },
  async changePassword(u, cmd) {
    await u.e3.changePassword(String(cmd.oldPassword), String(cmd.newPassword), cmd.keyName || undefined);
    return {};
  },
  async resetPrivateKeyBackup(u, cmd) {
    if (cmd.keyName) {
      await u.e3.resetPrivateKeyBackupWithKeyName(String(cmd.keyName));
    } else {
      await u.e3.resetPrivateKeyBackup();
    }
    return {};
  },
};

async function handle(cmd) {
  switch (cmd.op) {
    case 'configure':
      return configure(cmd);
    case 'ping':
      return {
        e3kit: require('@virgilsecurity/e3kit-node/package.json').version,
        node: process.version,
      };
    default: {
      const fn = ops[cmd.op];
      if (!fn) throw new Error(`unknown op ${JSON.stringify(cmd.op)}`);
      if (typeof cmd.user !== 'string' || cmd.user === '') throw new Error('user is required');
      const u = await initUser(cmd.user, cmd);
      return fn(u, cmd);
    }
  }
}

function enqueue(cmd) {
  const key = typeof cmd.user === 'string' && cmd.user !== '' ? cmd.user : '';
  const prev = queues.get(key) || Promise.resolve();
  const next = prev.then(async () => {
    try {
      send({ id: cmd.id, ok: true, result: await handle(cmd) });
    } catch (err) {
      send({ id: cmd.id, ok: false, error: describe(err) });
    }
  });
  queues.set(key, next);
  return next;
}

process.on('unhandledRejection', (err) => {
  console.error('driver: unhandled rejection:', err && err.stack ? err.stack : err);
});

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
const pending = new Set();
rl.on('line', (line) => {
  if (line.trim() === '') return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (e) {
    send({ id: null, ok: false, error: { name: 'ProtocolError', message: 'line is not JSON' } });
    return;
  }
  if (cmd.op === 'exit') {
    Promise.all([...pending]).then(() => {
      send({ id: cmd.id, ok: true, result: {} });
      process.exit(0);
    });
    return;
  }
  const p = enqueue(cmd);
  pending.add(p);
  p.finally(() => pending.delete(p));
});
rl.on('close', () => {
  Promise.all([...pending]).then(() => process.exit(0));
});
