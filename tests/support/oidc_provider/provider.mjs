// A real OpenID Connect provider (the certified `oidc-provider` package) for the portal's sign-in tests.
// Usage: node provider.mjs PORT REDIRECT_URI CLIENT_SECRET USERS_JSON
// USERS_JSON maps a login name to its groups; any password signs in (the package's development login pages).
import Provider from "oidc-provider";

const [port, redirectUri, clientSecret, usersJson] = process.argv.slice(2);
const users = JSON.parse(usersJson);

const configuration = {
  clients: [
    {
      client_id: "pool-portal",
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  pkce: { required: () => true },
  scopes: ["openid", "profile", "groups"],
  claims: { openid: ["sub"], profile: ["preferred_username", "name"], groups: ["groups"] },
  conformIdTokenClaims: false, // the scopes' claims go in the ID token, as most company providers do for groups
  async findAccount(ctx, id) {
    if (!(id in users)) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, name: id, groups: users[id] };
      },
    };
  },
  features: { devInteractions: { enabled: true } },
};

const provider = new Provider(`http://127.0.0.1:${port}`, configuration);
provider.listen(Number(port), "127.0.0.1", () => console.log(`listening on http://127.0.0.1:${port}`));
