#!/usr/bin/env node
// An MCP server that answers tool calls with text given to it, byte for byte: an upstream for
// tests of what `airlock mcp stdio` does with an answer's exact text (tests/blackbox/
// mcp_splice_test.sh). No SDK: an SDK server would only ever send well-formed JSON.
//   node scripted_server.mjs ANSWERS_FILE [RECEIVED_FILE]
// ANSWERS_FILE holds one JSON object per line, {"tool": NAME, "text": TEXT}: a tools/call of
// NAME is answered with TEXT, in which the string "@ID@" (quotes included) is replaced by the
// request's id. initialize, ping and tools/list are answered as an MCP server would, with
// every tool of the file listed; notifications are ignored. With RECEIVED_FILE, every line
// read is appended to it as it came.
import { appendFileSync, readFileSync } from "node:fs";
import { createInterface } from "node:readline";

const file = process.argv[2];
const received = process.argv[3];
if (!file) {
  console.error("usage: scripted_server.mjs ANSWERS_FILE");
  process.exit(2);
}
const answers = new Map();
for (const line of readFileSync(file, "utf8").split("\n")) {
  if (line.trim() === "") continue;
  const { tool, text } = JSON.parse(line);
  answers.set(tool, text);
}

function send(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

createInterface({ input: process.stdin }).on("line", (line) => {
  if (received) appendFileSync(received, line + "\n");
  let m;
  try {
    m = JSON.parse(line);
  } catch {
    return;
  }
  if (m.id === undefined || m.method === undefined) return;  // notifications, responses
  const id = m.id;
  switch (m.method) {
    case "initialize":
      send({
        jsonrpc: "2.0",
        id,
        result: {
          protocolVersion: m.params?.protocolVersion ?? "2025-06-18",
          capabilities: { tools: {} },
          serverInfo: { name: "airlock-test-scripted", version: "1.0.0" },
        },
      });
      return;
    case "ping":
      send({ jsonrpc: "2.0", id, result: {} });
      return;
    case "tools/list":
      send({
        jsonrpc: "2.0",
        id,
        result: {
          tools: [...answers.keys()].map((name) => ({
            name,
            inputSchema: { type: "object" },
          })),
        },
      });
      return;
    case "tools/call": {
      const text = answers.get(m.params?.name);
      if (text === undefined) {
        send({ jsonrpc: "2.0", id, error: { code: -32602, message: "no such tool" } });
        return;
      }
      process.stdout.write(text.split('"@ID@"').join(JSON.stringify(id)) + "\n");
      return;
    }
    default:
      send({ jsonrpc: "2.0", id, error: { code: -32601, message: "method not found" } });
  }
});
