// Starts `fedlang lsp` (setting `fedlang.command`) for .fed files: diagnostics, hover, completion,
// go to definition. Highlighting works without it (syntaxes/fed.tmLanguage.json).
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const [command, ...args] = vscode.workspace.getConfiguration("fedlang").get("command", ["fedlang", "lsp"]);
  client = new LanguageClient(
    "fedlang",
    "fedlang",
    { command, args },
    { documentSelector: [{ scheme: "file", language: "fedlang" }] }
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
