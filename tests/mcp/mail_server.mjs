#!/usr/bin/env node
// A small MCP server of the project's own (official TypeScript SDK, stdio), used as an
// upstream behind `airlock mcp stdio` in tests/blackbox/mcp_test.sh. Tools:
//   send_email {to: string[], subject, body}: appends one JSON line {to, subject, at} to the
//       file named by MAIL_LOG (required) and returns "sent to N recipient(s)";
//   crash {}: exits the process at once with status 3 (the gateway must restart it);
//   whoami_env {}: the sorted names (never the values) of its environment variables, to test
//       that the upstream gets only the environment the policy gives it.
import { appendFileSync } from "node:fs";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { z } from "zod";

const MAIL_LOG = process.env.MAIL_LOG;
if (!MAIL_LOG) {
  console.error("mail_server: MAIL_LOG must name the file that records sent mail");
  process.exit(2);
}

const server = new McpServer({ name: "airlock-test-mail", version: "1.0.0" });

server.registerTool(
  "send_email",
  {
    title: "Send an email",
    description: "Sends one email to every address of `to`.",
    inputSchema: {
      to: z.array(z.string()).min(1).describe("recipients"),
      subject: z.string(),
      body: z.string(),
    },
  },
  async ({ to, subject }) => {
    appendFileSync(MAIL_LOG, JSON.stringify({ to, subject, at: new Date().toISOString() }) + "\n");
    return { content: [{ type: "text", text: `sent to ${to.length} recipient(s)` }] };
  },
);

server.registerTool(
  "crash",
  { title: "Crash", description: "Exits the server process at once (status 3).", inputSchema: {} },
  async () => {
    process.exit(3);
  },
);

server.registerTool(
  "whoami_env",
  {
    title: "Environment variable names",
    description: "The sorted names (not values) of this process's environment variables.",
    inputSchema: {},
    annotations: { readOnlyHint: true },
  },
  async () => {
    const names = Object.keys(process.env).sort();
    return {
      content: [{ type: "text", text: names.join("\n") }],
      structuredContent: { names },
    };
  },
);

await server.connect(new StdioServerTransport());
