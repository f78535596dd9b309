// The provider the MCP conformance suite's server scenarios meet behind the hangar
// (tests/conformance.rs). It speaks stdio through the TypeScript SDK's low-level `Server`, so
// every schema below reaches the wire exactly as written (no zod conversion in between), and it
// offers what each scenario of `conformance list --server` asks for, under the names the
// scenarios call.
//
// Node runs this file as it is: its type annotations are erasable (type stripping). The test
// copies it next to the `node_modules` that tests/npm/package.json installs.

import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import {
  CallToolRequestSchema,
  CompleteRequestSchema,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  McpError,
  ErrorCode,
  ReadResourceRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";

type Json = Record<string, unknown>;
type Content = Json & { type: string };
type Extra = {
  _meta?: { progressToken?: string | number };
  sendNotification: (n: { method: string; params: Json }) => Promise<void>;
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// A 1x1 PNG, one red pixel.
const PNG =
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";

/** A tenth of a second of silence: 8 kHz, 8-bit mono PCM in a RIFF/WAVE header. */
function silentWav(): string {
  const samples = 800;
  const wav = Buffer.alloc(44 + samples, 0x80);
  wav.write("RIFF", 0, "ascii");
  wav.writeUInt32LE(36 + samples, 4);
  wav.write("WAVEfmt ", 8, "ascii");
  wav.writeUInt32LE(16, 16); // fmt chunk size
  wav.writeUInt16LE(1, 20); // PCM
  wav.writeUInt16LE(1, 22); // channels
  wav.writeUInt32LE(8000, 24); // sample rate
  wav.writeUInt32LE(8000, 28); // byte rate
  wav.writeUInt16LE(1, 32); // block align
  wav.writeUInt16LE(8, 34); // bits per sample
  wav.write("data", 36, "ascii");
  wav.writeUInt32LE(samples, 40);
  return wav.toString("base64");
}

const text = (t: string): Content => ({ type: "text", text: t });
const noArgs = { type: "object", properties: {} };

const server = new Server(
  { name: "hangar-conformance-fixture", version: "1.0.0" },
  {
    capabilities: {
      tools: {},
      resources: { subscribe: true },
      prompts: {},
      logging: {},
      completions: {},
    },
  },
);

/** Sends a log message unless the client's `logging/setLevel` filters it out. */
async function log(level: "info", data: string): Promise<void> {
  await server.sendLoggingMessage({ level, logger: "fixture", data });
}

type Tool = {
  description: string;
  inputSchema: Json;
  run: (args: Json, extra: Extra) => Promise<Json>;
};

const tools: Record<string, Tool> = {
  test_simple_text: {
    description: "Answers with one text block",
    inputSchema: noArgs,
    run: async () => ({ content: [text("This is a simple text response for testing.")] }),
  },
  test_image_content: {
    description: "Answers with a PNG image",
    inputSchema: noArgs,
    run: async () => ({ content: [{ type: "image", data: PNG, mimeType: "image/png" }] }),
  },
  test_audio_content: {
    description: "Answers with a WAV clip",
    inputSchema: noArgs,
    run: async () => ({ content: [{ type: "audio", data: silentWav(), mimeType: "audio/wav" }] }),
  },
  test_embedded_resource: {
    description: "Answers with an embedded text resource",
    inputSchema: noArgs,
    run: async () => ({
      content: [
        {
          type: "resource",
          resource: {
            uri: "test://embedded-resource",
            mimeType: "text/plain",
            text: "This is an embedded resource content.",
          },
        },
      ],
    }),
  },
  test_multiple_content_types: {
    description: "Answers with text, an image and an embedded resource",
    inputSchema: noArgs,
    run: async () => ({
      content: [
        text("Multiple content types test:"),
        { type: "image", data: PNG, mimeType: "image/png" },
        {
          type: "resource",
          resource: {
            uri: "test://mixed-content-resource",
            mimeType: "application/json",
            text: JSON.stringify({ test: "data", value: 123 }),
          },
        },
      ],
    }),
  },
  test_tool_with_logging: {
    description: "Logs three messages while it runs",
    inputSchema: noArgs,
    run: async () => {
      await log("info", "Tool execution started");
      await sleep(50);
      await log("info", "Tool processing data");
      await sleep(50);
      await log("info", "Tool execution completed");
      return { content: [text("Logged three messages")] };
    },
  },
  test_tool_with_progress: {
    description: "Reports progress 0, 50 and 100 of 100 while it runs",
    inputSchema: noArgs,
    run: async (_args, extra) => {
      const token = extra._meta?.progressToken;
      for (const progress of [0, 50, 100]) {
        if (progress > 0) await sleep(50);
        if (token !== undefined) {
          await extra.sendNotification({
            method: "notifications/progress",
            params: { progressToken: token, progress, total: 100 },
          });
        }
      }
      return { content: [text(token === undefined ? "Done (no progress token)" : "Done")] };
    },
  },
  test_error_handling: {
    description: "Always fails",
    inputSchema: noArgs,
    run: async () => ({
      isError: true,
      content: [text("This tool intentionally returns an error for testing")],
    }),
  },
  test_reconnection: {
    description: "Takes a moment, long enough for a client to poll its SSE stream (SEP-1699)",
    inputSchema: noArgs,
    run: async () => {
      await sleep(100);
      return { content: [text("Reconnection test completed")] };
    },
  },
  test_sampling: {
    description: "Asks the client's LLM to answer a prompt",
    inputSchema: {
      type: "object",
      properties: { prompt: { type: "string", description: "What to ask the LLM" } },
      required: ["prompt"],
    },
    run: async (args) => {
      const answer = await server.createMessage({
        messages: [{ role: "user", content: { type: "text", text: String(args.prompt) } }],
        maxTokens: 100,
      });
      const content = answer.content as Content | Content[];
      const first = Array.isArray(content) ? content[0] : content;
      const said = first?.type === "text" ? String(first.text) : JSON.stringify(content);
      return { content: [text(`LLM response: ${said}`)] };
    },
  },
  test_elicitation: {
    description: "Asks the user for a username and an email address",
    inputSchema: {
      type: "object",
      properties: { message: { type: "string", description: "What to show the user" } },
      required: ["message"],
    },
    run: async (args) => {
      const answer = await server.elicitInput({
        message: String(args.message),
        requestedSchema: {
          type: "object",
          properties: {
            username: { type: "string", description: "User's response" },
            email: { type: "string", description: "User's email address" },
          },
          required: ["username", "email"],
        },
      });
      return {
        content: [
          text(`User response: action=${answer.action}, content=${JSON.stringify(answer.content ?? {})}`),
        ],
      };
    },
  },
  test_elicitation_sep1034_defaults: {
    description: "Asks the user for values of every primitive type, each with a default",
    inputSchema: noArgs,
    run: async () => {
      const answer = await server.elicitInput({
        message: "Please confirm or change these values",
        requestedSchema: {
          type: "object",
          properties: {
            name: { type: "string", description: "Name", default: "John Doe" },
            age: { type: "integer", description: "Age", default: 30 },
            score: { type: "number", description: "Score", default: 95.5 },
            status: {
              type: "string",
              description: "Status",
              enum: ["active", "inactive", "pending"],
              default: "active",
            },
            verified: { type: "boolean", description: "Verified", default: true },
          },
        },
      });
      return { content: [text(elicited(answer))] };
    },
  },
  test_elicitation_sep1330_enums: {
    description: "Asks the user to choose from each kind of enum (SEP-1330)",
    inputSchema: noArgs,
    run: async () => {
      const answer = await server.elicitInput({
        message: "Please choose",
        requestedSchema: {
          type: "object",
          properties: {
            untitledSingle: { type: "string", enum: ["option1", "option2", "option3"] },
            titledSingle: {
              type: "string",
              oneOf: [
                { const: "value1", title: "First Option" },
                { const: "value2", title: "Second Option" },
                { const: "value3", title: "Third Option" },
              ],
            },
            legacyEnum: {
              type: "string",
              enum: ["opt1", "opt2", "opt3"],
              enumNames: ["Option One", "Option Two", "Option Three"],
            },
            untitledMulti: {
              type: "array",
              items: { type: "string", enum: ["option1", "option2", "option3"] },
            },
            titledMulti: {
              type: "array",
              items: {
                anyOf: [
                  { const: "value1", title: "First Choice" },
                  { const: "value2", title: "Second Choice" },
                  { const: "value3", title: "Third Choice" },
                ],
              },
            },
          },
        },
      } as Parameters<typeof server.elicitInput>[0]);
      return { content: [text(elicited(answer))] };
    },
  },
  json_schema_2020_12_tool: {
    description: "Tool with JSON Schema 2020-12 features",
    inputSchema: {
      $schema: "https://json-schema.org/draft/2020-12/schema",
      type: "object",
      $defs: {
        address: {
          type: "object",
          properties: { street: { type: "string" }, city: { type: "string" } },
        },
      },
      properties: { name: { type: "string" }, address: { $ref: "#/$defs/address" } },
      additionalProperties: false,
    },
    run: async (args) => ({ content: [text(`Received ${JSON.stringify(args)}`)] }),
  },
};

function elicited(answer: { action: string; content?: unknown }): string {
  return `Elicitation completed: action=${answer.action}, content=${JSON.stringify(answer.content ?? {})}`;
}

server.setRequestHandler(ListToolsRequestSchema, async () => ({
  tools: Object.entries(tools).map(([name, t]) => ({
    name,
    description: t.description,
    inputSchema: t.inputSchema,
  })),
}));

server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
  const tool = tools[request.params.name];
  if (!tool) {
    throw new McpError(ErrorCode.InvalidParams, `no tool named ${request.params.name}`);
  }
  const meta = request.params._meta as Extra["_meta"];
  return tool.run(request.params.arguments ?? {}, { ...extra, _meta: meta } as Extra);
});

type Resource = { name: string; description: string; mimeType: string; read: () => Json };

const resources: Record<string, Resource> = {
  "test://static-text": {
    name: "static-text",
    description: "A fixed text",
    mimeType: "text/plain",
    read: () => ({ text: "This is the content of the static text resource." }),
  },
  "test://static-binary": {
    name: "static-binary",
    description: "A fixed PNG image",
    mimeType: "image/png",
    read: () => ({ blob: PNG }),
  },
  "test://watched-resource": {
    name: "watched-resource",
    description: "A resource clients subscribe to",
    mimeType: "text/plain",
    read: () => ({ text: `Watched resource, read at ${new Date().toISOString()}` }),
  },
};

const TEMPLATE = /^test:\/\/template\/([^/]+)\/data$/;

server.setRequestHandler(ListResourcesRequestSchema, async () => ({
  resources: Object.entries(resources).map(([uri, r]) => ({
    uri,
    name: r.name,
    description: r.description,
    mimeType: r.mimeType,
  })),
}));

server.setRequestHandler(ListResourceTemplatesRequestSchema, async () => ({
  resourceTemplates: [
    {
      uriTemplate: "test://template/{id}/data",
      name: "template-data",
      description: "Data for the id in the URI",
      mimeType: "application/json",
    },
  ],
}));

server.setRequestHandler(ReadResourceRequestSchema, async (request) => {
  const uri = request.params.uri;
  const fixed = resources[uri];
  if (fixed) return { contents: [{ uri, mimeType: fixed.mimeType, ...fixed.read() }] };
  const id = TEMPLATE.exec(uri)?.[1];
  if (id !== undefined) {
    const data = { id, templateTest: true, data: `Data for ID: ${id}` };
    return { contents: [{ uri, mimeType: "application/json", text: JSON.stringify(data) }] };
  }
  throw new McpError(ErrorCode.InvalidParams, `no resource ${uri}`);
});

const subscribed = new Set<string>();

server.setRequestHandler(SubscribeRequestSchema, async (request) => {
  subscribed.add(request.params.uri);
  return {};
});

server.setRequestHandler(UnsubscribeRequestSchema, async (request) => {
  subscribed.delete(request.params.uri);
  return {};
});

type Prompt = {
  description: string;
  arguments?: { name: string; description: string; required: boolean }[];
  get: (args: Record<string, string>) => Json[];
};

const prompts: Record<string, Prompt> = {
  test_simple_prompt: {
    description: "A prompt without arguments",
    get: () => [{ role: "user", content: text("This is a simple prompt for testing.") }],
  },
  test_prompt_with_arguments: {
    description: "A prompt with two arguments",
    arguments: [
      { name: "arg1", description: "First test argument", required: true },
      { name: "arg2", description: "Second test argument", required: true },
    ],
    get: (args) => [
      {
        role: "user",
        content: text(`Prompt with arguments: arg1='${args.arg1}', arg2='${args.arg2}'`),
      },
    ],
  },
  test_prompt_with_embedded_resource: {
    description: "A prompt that embeds a resource",
    arguments: [{ name: "resourceUri", description: "URI of the resource to embed", required: true }],
    get: (args) => [
      {
        role: "user",
        content: {
          type: "resource",
          resource: {
            uri: args.resourceUri,
            mimeType: "text/plain",
            text: "Embedded resource content for testing.",
          },
        },
      },
      { role: "user", content: text("Please process the embedded resource above.") },
    ],
  },
  test_prompt_with_image: {
    description: "A prompt with an image",
    get: () => [
      { role: "user", content: { type: "image", data: PNG, mimeType: "image/png" } },
      { role: "user", content: text("Please analyze the image above.") },
    ],
  },
};

server.setRequestHandler(ListPromptsRequestSchema, async () => ({
  prompts: Object.entries(prompts).map(([name, p]) => ({
    name,
    description: p.description,
    ...(p.arguments ? { arguments: p.arguments } : {}),
  })),
}));

server.setRequestHandler(GetPromptRequestSchema, async (request) => {
  const prompt = prompts[request.params.name];
  if (!prompt) {
    throw new McpError(ErrorCode.InvalidParams, `no prompt named ${request.params.name}`);
  }
  const args = request.params.arguments ?? {};
  const missing = (prompt.arguments ?? []).filter((a) => a.required && !(a.name in args));
  if (missing.length > 0) {
    throw new McpError(
      ErrorCode.InvalidParams,
      `missing arguments: ${missing.map((a) => a.name).join(", ")}`,
    );
  }
  return { description: prompt.description, messages: prompt.get(args) };
});

const CITIES = ["paris", "park", "party", "prague", "porto"];

server.setRequestHandler(CompleteRequestSchema, async (request) => {
  const value = request.params.argument.value.toLowerCase();
  const values = CITIES.filter((c) => c.startsWith(value));
  return { completion: { values, total: values.length, hasMore: false } };
});

await server.connect(new StdioServerTransport());
