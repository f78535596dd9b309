"""Drive mcp-hangar with the official MCP Python SDK client and print what it saw as JSON.

Usage: sdk_client.py --mode legacy|auto (--url URL | -- COMMAND ARGS...)

The Rust end-to-end tests run this so that a client nobody on this project wrote checks the
hangar's wire format, in both protocol generations (legacy = initialize handshake, auto =
2026-07-28 server/discover with fallback).
"""

import argparse
import asyncio
import json
import sys

from mcp import Client, StdioServerParameters


def content_text(result):
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", default="auto")
    parser.add_argument("--url")
    parser.add_argument("command", nargs="*")
    args = parser.parse_args()
    if args.url:
        server = args.url
    else:
        server = StdioServerParameters(command=args.command[0], args=args.command[1:])
    async with Client(server, mode=args.mode) as client:
        tools = await client.list_tools()
        added = await client.call_tool("math__add", {"a": 2, "b": 40})
        listed = await client.call_tool("registry_list", {})
        invoked = await client.call_tool(
            "registry_invoke", {"provider": "math", "tool": "echo", "arguments": {"text": "hi"}}
        )
        failed = await client.call_tool("math__fail", {"message": "boom"})
        unknown = await client.call_tool("registry_invoke", {"provider": "mth", "tool": "add"})
        tools_after = await client.list_tools(cache_mode="bypass")
        out = {
            "protocol_version": client.protocol_version,
            "server_name": client.server_info.name if client.server_info else None,
            "tools": [t.name for t in tools.tools],
            "tools_after": [t.name for t in tools_after.tools],
            "add": {"structured": added.structured_content, "text": content_text(added), "is_error": added.is_error},
            "list": listed.structured_content,
            "echo": {"text": content_text(invoked), "is_error": invoked.is_error},
            "fail": {"text": content_text(failed), "is_error": failed.is_error},
            "unknown": {"text": content_text(unknown), "is_error": unknown.is_error},
        }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
