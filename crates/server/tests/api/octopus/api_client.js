// Drives Keyward's Octopus door with Octopus's own npm client (@octopusdeploy/api-client
// 1.4.0, the last release with API-key methods), the way a user's script would.
// Usage: node api_client.js <server URL> <API key> <purpose>
// Prints one JSON object with what each step returned.
const { Client, Repository } = require("@octopusdeploy/api-client");

async function currentUser(url, apiKey) {
  const client = await Client.create({ apiUri: url, apiKey, space: "Default", autoConnect: true });
  return new Repository(client).users.getCurrent();
}

async function failure(promise) {
  try {
    await promise;
    return "accepted";
  } catch (e) {
    return { StatusCode: e.StatusCode, ErrorMessage: e.ErrorMessage };
  }
}

async function main() {
  const [url, apiKey, purpose] = process.argv.slice(2);
  const client = await Client.create({ apiUri: url, apiKey, space: "Default", autoConnect: true });
  const users = new Repository(client).users;
  const me = await users.getCurrent();
  const created = await users.createApiKey(me, purpose, null);
  const listed = await users.listApiKeys(me);
  const meWithNewKey = await currentUser(url, created.ApiKey);
  const item = listed.Items.find((k) => k.Id === created.Id);
  await users.revokeApiKey(item);
  const afterRevoke = await failure(currentUser(url, created.ApiKey));
  const noPurpose = await failure(users.createApiKey(me, "", null));
  console.log(JSON.stringify({ me, created, listed, meWithNewKey, afterRevoke, noPurpose }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
