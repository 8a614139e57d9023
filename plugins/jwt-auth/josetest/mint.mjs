// Mints JSON Web Tokens with jose for the relay's jwt-auth tests, so the
// tokens jwt-auth checks come from an implementation independent of it.
//
// stdin: {"keys": [{"kid", "alg"}], "secrets": {"kid": "base64url"},
//         "tokens": [{"kid", "alg"?, "claims", "no_kid"?, "hmac_with_pem_of"?, "unsecured"?}]}
// stdout: {"jwks": {"kid": public JWK}, "pems": {"kid": SPKI PEM}, "tokens": ["..."]}
import * as jose from 'jose';

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const req = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const keys = {};
const out = { jwks: {}, pems: {}, tokens: [] };
for (const { kid, alg } of req.keys ?? []) {
  const { publicKey, privateKey } = await jose.generateKeyPair(alg, alg === 'EdDSA' ? { crv: 'Ed25519' } : {});
  keys[kid] = { alg, privateKey };
  out.jwks[kid] = { ...(await jose.exportJWK(publicKey)), kid, alg, use: 'sig' };
  out.pems[kid] = await jose.exportSPKI(publicKey);
}
for (const [kid, secret] of Object.entries(req.secrets ?? {})) {
  keys[kid] = { alg: 'HS256', privateKey: jose.base64url.decode(secret) };
}
for (const t of req.tokens ?? []) {
  if (t.unsecured) {
    out.tokens.push(new jose.UnsecuredJWT(t.claims).encode());
    continue;
  }
  let { alg, privateKey } = keys[t.kid];
  if (t.hmac_with_pem_of) {
    // The classic confusion: the RSA public key, as text, used as an HMAC secret.
    alg = 'HS256';
    privateKey = new TextEncoder().encode(out.pems[t.hmac_with_pem_of]);
  }
  alg = t.alg ?? alg;
  const header = { alg, typ: 'JWT' };
  if (!t.no_kid) header.kid = t.kid;
  out.tokens.push(await new jose.SignJWT(t.claims).setProtectedHeader(header).sign(privateKey));
}
process.stdout.write(JSON.stringify(out));
