const jsc8 = require("jsc8");
// Replace the apiKey placeholder with your API key.
// Update the fabricName if you need to log in to a fabric other than _system.
const client = new jsc8({url: "https://play.paas.macrometa.io", apiKey: "XXXX", fabricName: '_system'});
