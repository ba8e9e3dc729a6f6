// A relying party on openid-client (OpenID Certified): discovery, authorization code + PKCE,
// the id_token checked (signature, iss, aud, nonce, at_hash), userinfo, refresh, end session.
// Usage: node rp.mjs ISSUER CLIENT_ID REDIRECT_URI; prints {"authorization_url": ...}, reads
// the callback URL (what the browser was sent to) on standard input, prints the results.
import * as client from "openid-client";
import { createInterface } from "node:readline";

const [issuer, clientId, redirectUri] = process.argv.slice(2);
const options = issuer.startsWith("http://") ? { execute: [client.allowInsecureRequests] } : {};
const config = await client.discovery(new URL(issuer), clientId, undefined, client.None(), options);

const verifier = client.randomPKCECodeVerifier();
const nonce = client.randomNonce();
const state = client.randomState();
const authorizationUrl = client.buildAuthorizationUrl(config, {
  redirect_uri: redirectUri,
  scope: "openid me",
  code_challenge: await client.calculatePKCECodeChallenge(verifier),
  code_challenge_method: "S256",
  nonce,
  state,
});
console.log(JSON.stringify({ authorization_url: authorizationUrl.href }));

const lines = createInterface({ input: process.stdin });
const callback = await new Promise((resolve) => lines.once("line", resolve));
lines.close();

const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
  pkceCodeVerifier: verifier,
  expectedNonce: nonce,
  expectedState: state,
  idTokenExpected: true,
});
const claims = tokens.claims();
const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
const logout = client.buildEndSessionUrl(config, { id_token_hint: tokens.id_token });
console.log(JSON.stringify({
  sub: claims.sub,
  aud: claims.aud,
  iss: claims.iss,
  nonce_ok: claims.nonce === nonce,
  userinfo_sub: userinfo.sub,
  username: userinfo.preferred_username,
  refreshed: typeof refreshed.access_token === "string" && refreshed.access_token !== tokens.access_token,
  end_session_url: logout.href,
}));
