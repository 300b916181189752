// Drives an MCP server over stdio with the official TypeScript SDK and prints one JSON summary on stdout.
// Usage: node client.mjs <command> [args...]   (tests/test_mcp_ts_client.py runs it against `tooltune mcp`)
// Anything the SDK (or ajv, which compiles the tools' output schemas) prints through console.* is
// collected into `warnings`, so the test can assert that no output schema was rejected or half-understood.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const warnings = [];
for (const level of ["warn", "error", "log", "info", "debug", "trace"]) {
  console[level] = (...args) => {
    const line = `${level}: ${args.map((a) => (a instanceof Error ? a.message : String(a))).join(" ")}`;
    warnings.push(line);
    process.stderr.write(line + "\n"); // stdout carries the summary only
  };
}
const write = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const [command, ...args] = process.argv.slice(2);
if (!command) {
  process.stderr.write("usage: node client.mjs <command> [args...]\n");
  process.exit(2);
}

const text = (result) => (result.content ?? []).filter((c) => c.type === "text").map((c) => c.text).join("\n");
const outcome = (result) => ({
  isError: Boolean(result.isError),
  text: text(result),
  structuredContent: result.structuredContent ?? null,
});

async function main() {
  const transport = new StdioClientTransport({ command, args, env: { ...process.env }, stderr: "inherit" });
  const client = new Client({ name: "tooltune-ts-test", version: "0.0.0" });
  await client.connect(transport);
  const summary = { server: client.getServerVersion() };
  try {
    const { tools } = await client.listTools(); // compiles every output schema with ajv
    summary.tools = tools.map((t) => t.name).sort();
    summary.withOutputSchema = tools.filter((t) => t.outputSchema).map((t) => t.name).sort();
    // good input: the SDK validates structuredContent against the output schema (throws if it does not match)
    summary.list_adapters = outcome(await client.callTool({ name: "list_adapters", arguments: {} }));
    summary.list_jobs = outcome(await client.callTool({ name: "list_jobs", arguments: {} }));
    // bad input: tool errors (isError) with a message saying what to change
    summary.get_job_missing = outcome(await client.callTool({ name: "get_job", arguments: { id: "train-nope" } }));
    summary.generate_no_tools = outcome(
      await client.callTool({ name: "generate_training_examples", arguments: {} }),
    );
  } finally {
    await client.close();
  }
  summary.warnings = warnings;
  write(summary);
}

const timer = setTimeout(() => {
  write({ fatal: "timed out after 50 s", warnings });
  process.exit(1);
}, 50_000);
main()
  .then(() => {
    clearTimeout(timer);
  })
  .catch((err) => {
    clearTimeout(timer);
    write({ fatal: err instanceof Error ? `${err.name}: ${err.message}` : String(err), warnings });
    process.exitCode = 1;
  });
