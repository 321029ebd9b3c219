// Writes ../pythia.json: golden vectors of Virgil Pythia made with the official
// @virgilsecurity/pythia-crypto (version pinned in package.json and
// package-lock.json). Run: npm ci && node --no-experimental-fetch gen.js
'use strict';

const fs = require('fs');
const path = require('path');
const { initPythia, VirgilPythiaCrypto } = require('@virgilsecurity/pythia-crypto');

const hex = (b) => Buffer.from(b).toString('hex');
const utf8 = (s) => Buffer.from(s, 'utf8');

// Inputs: fixed, so the deterministic outputs (key pairs, transform) repeat
// on every run; blind and prove draw random numbers, and their secrets are
// recorded so that a reimplementation can check them.
const keyCases = [
  { transformationKeyId: utf8('brainkey'), pythiaSecret: Buffer.alloc(32, 0x11), pythiaScopeSecret: Buffer.alloc(32, 0x22) },
  { transformationKeyId: utf8('k'), pythiaSecret: utf8('master secret'), pythiaScopeSecret: utf8('scope') },
  {
    transformationKeyId: Buffer.from('00ff10ee20dd30cc40bb50aa60997088', 'hex'),
    pythiaSecret: Buffer.from('5c1c3a0d6e0f7b1e8a2f9c3d4b5e6f70819203a4b5c6d7e8f90a1b2c3d4e5f60', 'hex'),
    pythiaScopeSecret: Buffer.from('0102030405060708090a0b0c0d0e0f10', 'hex'),
  },
];

const passwords = ['correct horse battery staple', 'p', 'pässwörd 🔑', 'alice-uid-0001'];
const tweaks = [utf8('alice'), utf8('bob\u0000backup'), Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex'), utf8('x')];

async function main() {
  await initPythia();
  const pythia = new VirgilPythiaCrypto();
  const out = {
    generator: 'testdata/virgil/pythia-gen/gen.js',
    library: '@virgilsecurity/pythia-crypto ' + require('@virgilsecurity/pythia-crypto/package.json').version,
    encoding: 'hex',
    keyPairs: [],
    transforms: [],
    blinds: [],
    updateTokens: [],
  };

  const pairs = keyCases.map((c) => {
    const kp = pythia.computeTransformationKeyPair(c);
    out.keyPairs.push({
      transformationKeyId: hex(c.transformationKeyId),
      pythiaSecret: hex(c.pythiaSecret),
      pythiaScopeSecret: hex(c.pythiaScopeSecret),
      privateKey: hex(kp.privateKey),
      publicKey: hex(kp.publicKey),
    });
    return kp;
  });

  passwords.forEach((pw, i) => {
    const kp = pairs[i % pairs.length];
    const tweak = tweaks[i % tweaks.length];
    const { blindedPassword, blindingSecret } = pythia.blind(utf8(pw));
    const { transformedPassword, transformedTweak } = pythia.transform({
      blindedPassword, tweak, transformationPrivateKey: kp.privateKey,
    });
    const again = pythia.transform({ blindedPassword, tweak, transformationPrivateKey: kp.privateKey });
    if (!again.transformedPassword.equals(transformedPassword)) {
      throw new Error('transform is not deterministic');
    }
    const { proofValueC, proofValueU } = pythia.prove({
      transformedPassword, blindedPassword, transformedTweak, transformationKeyPair: kp,
    });
    const verified = pythia.verify({
      transformedPassword, blindedPassword, tweak, transformationPublicKey: kp.publicKey, proofValueC, proofValueU,
    });
    const deblindedPassword = pythia.deblind({ transformedPassword, blindingSecret });
    out.transforms.push({
      password: hex(utf8(pw)),
      keyPair: i % pairs.length,
      tweak: hex(tweak),
      blindedPassword: hex(blindedPassword),
      blindingSecret: hex(blindingSecret),
      transformedPassword: hex(transformedPassword),
      transformedTweak: hex(transformedTweak),
      proofValueC: hex(proofValueC),
      proofValueU: hex(proofValueU),
      verified: Boolean(verified),
      deblindedPassword: hex(deblindedPassword),
    });
  });

  // The same password blinded twice: different blinded values, one deblinded value.
  for (let i = 0; i < 2; i++) {
    const pw = utf8('same password');
    const { blindedPassword, blindingSecret } = pythia.blind(pw);
    const { transformedPassword } = pythia.transform({
      blindedPassword, tweak: tweaks[0], transformationPrivateKey: pairs[0].privateKey,
    });
    out.blinds.push({
      password: hex(pw),
      keyPair: 0,
      tweak: hex(tweaks[0]),
      blindedPassword: hex(blindedPassword),
      blindingSecret: hex(blindingSecret),
      transformedPassword: hex(transformedPassword),
      deblindedPassword: hex(pythia.deblind({ transformedPassword, blindingSecret })),
    });
  }

  const token = pythia.getPasswordUpdateToken({
    oldTransformationPrivateKey: pairs[0].privateKey, newTransformationPrivateKey: pairs[1].privateKey,
  });
  const t0 = out.transforms[0];
  out.updateTokens.push({
    oldKeyPair: 0,
    newKeyPair: 1,
    token: hex(token),
    deblindedPassword: t0.deblindedPassword,
    updatedDeblindedPassword: hex(pythia.updateDeblindedWithToken({
      deblindedPassword: Buffer.from(t0.deblindedPassword, 'hex'), updateToken: token,
    })),
  });

  const file = path.join(__dirname, '..', 'pythia.json');
  fs.writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
  console.log('wrote', file);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
